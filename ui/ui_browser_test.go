package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// These tests drive the embedded UI in headless chromium against a real `lookalike serve`
// (see startServer), with real photos from UKBench.

const resultCards = "#results .card:not(.skeleton)"

// allCards are the matches and the weak results listed apart under "No close match".
const allCards = "#results .card:not(.skeleton), #weak-results .card"

func leftHeld(p *input.DispatchMouseEventParams) {
	p.Button = input.MouseButtonLeft
	p.Buttons = 1
}

type rect struct{ X, Y, W, H float64 }

func (b *browser) rect(sel string) rect {
	b.t.Helper()
	return eval[rect](b, fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect();
		return {X: r.x, Y: r.y, W: r.width, H: r.height}; })()`, sel))
}

func (b *browser) ids(sel string) []string {
	b.t.Helper()
	return eval[[]string](b, fmt.Sprintf(`[...document.querySelectorAll(%q)].map((e) => e.dataset.id)`, sel))
}

func (b *browser) searchFor(photo string) {
	b.t.Helper()
	b.open("#/search", "#page-search")
	// The page replaces the results of an earlier search; drop them here too, so that the wait
	// below cannot see them before the page has reacted to the new photo.
	b.do("forget earlier results", 5*time.Second, chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('#results .card, #weak-results .card').forEach((c) => c.remove())`))
	b.upload("#search-file", photo)
	b.wait("search results or an error", fmt.Sprintf(`(document.querySelector(%q) && !document.querySelector('#results[aria-busy]')) || document.querySelector('#search-error .error-box')`, allCards), 60*time.Second)
	if msg := b.text("#search-error"); msg != "" {
		b.t.Fatalf("search failed in the page: %s", msg)
	}
}

// TestSearchByPhoto uploads a held-back photo of an indexed object: the best match must be
// another photo of the same object, with a score, a timing line and the item's metadata.
func TestSearchByPhoto(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.URL)
	for _, g := range []int{0, 3} {
		b.searchFor(s.photo(4*g + 3))
		got := b.ids(resultCards)
		if len(got) == 0 || !slices.Contains(groupIDs(g), got[0]) {
			t.Errorf("object %d: first result %v, want one of %v (all: %v)", g, first(got), groupIDs(g), got)
		}
		score := b.text(resultCards + " .score-pct")
		pct, err := strconv.ParseFloat(strings.TrimSuffix(score, "%"), 64)
		if err != nil || pct <= 0 || pct > 100 {
			t.Errorf("object %d: first score %q, want a percentage in (0, 100]", g, score)
		}
		if title := b.text(resultCards + " .card-title"); !strings.Contains(title, fmt.Sprintf("Object %d", g)) {
			t.Errorf("object %d: first card title %q, want the item's name", g, title)
		}
		if facts := b.text(resultCards + " .facts"); !strings.Contains(facts, seedCategories[g%len(seedCategories)]) {
			t.Errorf("object %d: first card facts %q, want category %q", g, facts, seedCategories[g])
		}
		timing := b.text("#timing")
		for _, part := range []string{"decode", "inference", "search", "total", "ms"} {
			if !strings.Contains(timing, part) {
				t.Errorf("timing line %q lacks %q", timing, part)
			}
		}
		thumbOK := eval[bool](b, `(async () => { const img = document.querySelector('#results .card img');
			if (!img) return false; if (!img.complete) await new Promise((r) => img.addEventListener('load', r, {once: true}));
			return img.naturalWidth > 0; })()`)
		if !thumbOK {
			t.Errorf("object %d: first result thumbnail did not load", g)
		}
	}
	// The catalog holds more than one page of results.
	if n := len(b.ids(allCards)); n != 24 {
		t.Fatalf("first page has %d results, want 24 (the page size) of the %d items", n, 3*seedGroups+1)
	}
	b.do("load more", 10*time.Second, chromedp.Click(chromedp.CSS("#load-more")))
	b.wait("second page", fmt.Sprintf(`document.querySelectorAll(%q).length > 24 && !document.querySelector('#results[aria-busy]')`, allCards), 60*time.Second)
	all := b.ids(allCards)
	seen := map[string]bool{}
	for _, id := range all {
		if seen[id] {
			t.Errorf("result %s appears twice after Load more", id)
		}
		seen[id] = true
	}
	b.noConsoleProblems()
}

// TestWeakMatches: results below the server's match threshold are not counted as matches and are
// listed apart, under "No close match — these are the nearest" when none is close.
func TestWeakMatches(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.URL)
	for _, tc := range []struct {
		name   string
		photo  int
		strong bool // at least one close match expected
	}{
		{"held-back photo of an indexed object", 4*3 + 3, true},
		{"object the catalog does not hold", 4*(seedGroups+10) + 3, false},
	} {
		resp, body, err := s.postImage("/v1/collections/default/search", s.photo(tc.photo), map[string]string{"k": "24"})
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: search through the API: %v %s", tc.name, err, body)
		}
		var res struct {
			WeakBelow float64 `json:"weak_below"`
			Results   []struct {
				ID    string  `json:"id"`
				Score float64 `json:"score"`
				Weak  bool    `json:"weak"`
			} `json:"results"`
		}
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		var strong, weak []string
		for _, r := range res.Results {
			if r.Weak != (r.Score < res.WeakBelow) {
				t.Errorf("%s: result %s score %.3f weak=%v, weak_below %.3f", tc.name, r.ID, r.Score, r.Weak, res.WeakBelow)
			}
			if r.Weak {
				weak = append(weak, r.ID)
			} else {
				strong = append(strong, r.ID)
			}
		}
		if tc.strong != (len(strong) > 0) || len(weak) == 0 {
			t.Fatalf("%s: %d close and %d weak results (weak_below %.3f, scores %+v); the test needs close=%v and some weak",
				tc.name, len(strong), len(weak), res.WeakBelow, res.Results, tc.strong)
		}
		b.searchFor(s.photo(tc.photo))
		b.wait("results settled", `!document.querySelector('#results[aria-busy]')`, 30*time.Second)
		if got := b.ids(resultCards); !slices.Equal(got, strong) {
			t.Errorf("%s: match cards %v, want the close results %v", tc.name, got, strong)
		}
		if got := b.ids("#weak-results .card"); !slices.Equal(got, weak) {
			t.Errorf("%s: weak cards %v, want %v", tc.name, got, weak)
		}
		summary := b.text("#results-summary")
		head := b.text("#weak-h")
		if tc.strong {
			if want := fmt.Sprintf("%d match", len(strong)); !strings.HasPrefix(summary, want) {
				t.Errorf("%s: summary %q, want it to start with %q (weak results are not matches)", tc.name, summary, want)
			}
		} else {
			if !strings.HasPrefix(summary, "No close match") {
				t.Errorf("%s: summary %q, want No close match", tc.name, summary)
			}
			if head != "No close match — these are the nearest" {
				t.Errorf("%s: weak section heading %q", tc.name, head)
			}
		}
		if eval[bool](b, `document.querySelector('#weak-section').hidden`) {
			t.Errorf("%s: the weak section is hidden", tc.name)
		}
		if n := eval[int](b, `document.querySelectorAll('#weak-results .score.high').length`); n > 0 {
			t.Errorf("%s: %d weak results have a green (high) score bar", tc.name, n)
		}
	}
	b.noConsoleProblems()
}

// TestSearchFilter picks a category in the filter panel (built from the fields endpoint): every
// result must then belong to that category.
func TestSearchFilter(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.URL)
	b.searchFor(s.photo(3))
	b.wait("category filter", `document.querySelector('#filter-category option[value="watches"]')`, 15*time.Second)
	b.do("choose a category", 10*time.Second,
		chromedp.SetValue(chromedp.CSS("#filter-category"), "watches"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#filter-category').dispatchEvent(new Event('change'))`))
	b.wait("filtered results", `document.querySelector('#results-summary').textContent.includes('filter') && !document.querySelector('#results[aria-busy]')`, 30*time.Second)
	got := b.ids(allCards)
	if len(got) == 0 {
		t.Fatalf("no results with category=watches; want the photos of objects 2 and 8")
	}
	for _, id := range got {
		if !slices.Contains(groupIDs(2, 8), id) {
			t.Errorf("result %s is not in category watches (objects 2 and 8: %v)", id, groupIDs(2, 8))
		}
	}
	b.noConsoleProblems()
}

// TestCropSearch draws a region on the query photo with the mouse: the page must send it and
// show results for the region.
func TestCropSearch(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.URL)
	b.searchFor(s.photo(7))
	b.wait("preview decoded", `document.querySelector('.stage-img').naturalWidth > 0`, 10*time.Second)
	r := b.rect(".stage-img")
	x0, y0 := r.X+r.W*0.2, r.Y+r.H*0.15
	x1, y1 := r.X+r.W*0.8, r.Y+r.H*0.85
	b.do("draw a region", 15*time.Second,
		chromedp.MouseEvent(chromedp.MouseMoved, x0, y0),
		chromedp.MouseEvent(chromedp.MousePressed, x0, y0, chromedp.ButtonLeft, chromedp.ClickCount(1)),
		chromedp.MouseEvent(chromedp.MouseMoved, (x0+x1)/2, (y0+y1)/2, leftHeld),
		chromedp.MouseEvent(chromedp.MouseMoved, x1, y1, leftHeld),
		chromedp.MouseEvent(chromedp.MouseReleased, x1, y1, chromedp.ButtonLeft, chromedp.ClickCount(1)))
	b.wait("region results", `document.querySelector('#results-summary').textContent.includes('region') || document.querySelector('#search-error .error-box')`, 60*time.Second)
	if msg := b.text("#search-error"); msg != "" {
		t.Fatalf("crop search failed in the page: %s", msg)
	}
	info := b.text("#crop-info")
	// UKBench photos are 640×480: the region is about 60 % × 70 % of that.
	if !strings.Contains(info, "px") {
		t.Errorf("crop info %q: want the region size in pixels", info)
	}
	var w, h, x, y int
	if _, err := fmt.Sscanf(info, "Searching a region: %d × %d px at (%d, %d)", &w, &h, &x, &y); err != nil {
		t.Errorf("crop info %q: %v", info, err)
	} else if w < 330 || w > 440 || h < 290 || h > 380 || x < 100 || x > 160 || y < 50 || y > 100 {
		t.Errorf("crop %d×%d at (%d,%d): want about 384×336 at (128,72) of the 640×480 photo", w, h, x, y)
	}
	if got := b.ids(resultCards); len(got) == 0 {
		t.Errorf("crop search returned no results")
	}
	// Keyboard: Escape clears the region and searches the whole photo again.
	b.do("clear region", 10*time.Second, chromedp.Focus(chromedp.CSS(".stage")), chromedp.KeyEvent("\x1b"))
	b.wait("whole-photo results", `!document.querySelector('#results-summary').textContent.includes('region') && document.querySelector('#results .card:not(.skeleton)')`, 60*time.Second)
	b.noConsoleProblems()
}

// TestItemPageSimilar opens an item: it shows the photo, every metadata field and similar items;
// following a similar item walks the catalog.
func TestItemPageSimilar(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.URL)
	b.open("#/item/default/"+seedID(4), "#item-meta dd")
	if title := b.text("#item-title"); title != "Object 1, photo 0" {
		t.Errorf("item title %q, want the name", title)
	}
	meta := b.text("#item-meta")
	for _, want := range []string{"category", "bags", "brand", "globex", "price", "25", seedID(4)} {
		if !strings.Contains(meta, want) {
			t.Errorf("item metadata %q lacks %q", meta, want)
		}
	}
	// The large photo is the source rendition (UKBench photos are 640 px wide), not the 256 px thumbnail.
	b.wait("photo", `document.querySelector('#item-photo img') && document.querySelector('#item-photo img').naturalWidth > 0`, 15*time.Second)
	if src, w := eval[string](b, `document.querySelector('#item-photo img').getAttribute('src')`), eval[int](b, `document.querySelector('#item-photo img').naturalWidth`); !strings.HasSuffix(src, "/source") || w <= 256 {
		t.Errorf("item photo %s is %d px wide, want the source rendition (> 256 px)", src, w)
	}
	// ImageNet labels are the catalog team's: closed away, not in the text a shopper sees.
	if open := eval[bool](b, `document.querySelector('#item-labels-box').open`); open {
		t.Errorf("the model labels are shown to shoppers; want them in a closed catalog-team section")
	}
	if eval[bool](b, `document.querySelector('#item-labels').checkVisibility()`) {
		t.Errorf("the item page shows model labels to shoppers")
	}
	b.wait("similar items", `document.querySelector('#similar .card:not(.skeleton)') || document.querySelector('#similar-error .error-box')`, 30*time.Second)
	if msg := b.text("#similar-error"); msg != "" {
		t.Fatalf("similar items failed in the page: %s", msg)
	}
	sim := b.ids("#similar .card:not(.skeleton)")
	if slices.Contains(sim, seedID(4)) {
		t.Errorf("similar items %v include the item itself", sim)
	}
	if len(sim) == 0 || !slices.Contains(groupIDs(1), sim[0]) {
		t.Fatalf("first similar item %v, want another photo of object 1 %v (all: %v)", first(sim), groupIDs(1), sim)
	}
	next := sim[0]
	b.do("open a similar item", 15*time.Second, chromedp.Click(chromedp.CSS("#similar .card a")))
	b.wait("next item page", fmt.Sprintf(`location.hash === '#/item/default/' + %s && document.querySelector('#item-title').textContent.startsWith('Object 1')`, quote(next)), 15*time.Second)
	b.wait("its similar items", fmt.Sprintf(`document.querySelector('#similar .card:not(.skeleton)') && !document.querySelector('#similar .card[data-id=%s]')`, quote(next)), 30*time.Second)
	similar := b.ids("#similar .card:not(.skeleton)")
	// "Search with this photo" searches with the item's stored vector: the search page ranks like
	// "Similar items" (not the thumbnail scoring itself first), and its URL names the item.
	b.do("search with this photo", 10*time.Second, chromedp.Click(chromedp.CSS("#item-search")))
	b.wait("search results", fmt.Sprintf(`location.hash.startsWith('#/search?') && document.querySelector(%q) && !document.querySelector('#results[aria-busy]')`, allCards), 60*time.Second)
	if hash := eval[string](b, `location.hash`); !strings.Contains(hash, "item="+next) || !strings.Contains(hash, "c=default") {
		t.Errorf("search by item: URL %s, want the item id and collection in it", hash)
	}
	got := b.ids(allCards)
	if slices.Contains(got, next) || len(got) < len(similar) || !slices.Equal(got[:len(similar)], similar) {
		t.Errorf("search with the photo of %s: results %v, want the item page's similar items %v first (and not the item itself)", next, got, similar)
	}
	// A missing item says so once, in words.
	b.open("#/item/default/no-such-item", "#item-error .error-box")
	if msg := b.text("#item-error .error-title"); !strings.Contains(msg, "Not found") {
		t.Errorf("missing item page says %q, want Not found", msg)
	}
	if n := eval[int](b, `document.querySelectorAll('#page-item .error-box').length`); n != 1 {
		t.Errorf("missing item page shows %d error boxes, want 1", n)
	}
	// The click was reported to the quality monitor as feedback.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st struct {
			Quality struct {
				Collections map[string]struct {
					Feedback struct {
						Events  int `json:"events"`
						Clicked int `json:"clicked"`
					} `json:"feedback"`
				} `json:"collections"`
			} `json:"quality"`
		}
		s.getJSON(t, "/v1/stats", &st)
		fb := st.Quality.Collections["default"].Feedback
		if fb.Events > 0 && fb.Clicked > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("stats quality feedback %+v: want the impression and the click the page reported", fb)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.noConsoleProblems("the server responded with a status of 404")
}

// TestStatusPage checks the numbers on the status page against /v1/stats.
func TestStatusPage(t *testing.T) {
	s := startServer(t)
	// Make sure there is traffic to chart.
	if resp, body, err := s.postImage("/v1/collections/default/search", s.photo(11), map[string]string{"k": "3"}); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("search through the API: %v %s", err, body)
	}
	var stats struct {
		Model struct {
			ID string `json:"id"`
		} `json:"model"`
		Collections []struct {
			Count int `json:"count"`
		} `json:"collections"`
		Quality map[string]any `json:"quality"`
	}
	if code := s.getJSON(t, "/v1/stats", &stats); code != http.StatusOK {
		t.Fatalf("GET /v1/stats: HTTP %d", code)
	}
	size := 0
	for _, c := range stats.Collections {
		size += c.Count
	}
	b := newBrowser(t, s.URL)
	b.open("#/status", "#tile-size")
	if got := b.text("#tile-size .tile-value"); got != strconv.Itoa(size) && size < 1000 {
		t.Errorf("index size tile %q, want %d", got, size)
	}
	if got := b.text("#tile-model .tile-value"); stats.Model.ID == "" || got != stats.Model.ID {
		t.Errorf("model tile %q, want %q", got, stats.Model.ID)
	}
	if got := b.text("#tile-searches .tile-value"); got == "" || got == "0" {
		t.Errorf("searches tile %q, want at least 1", got)
	}
	if got := b.text("#tile-qps .tile-value"); got == "" || got == "—" {
		t.Errorf("queries/s tile %q, want a number", got)
	}
	b.wait("charts", `document.querySelectorAll('#status-charts svg.chart').length === 3`, 15*time.Second)
	if n := eval[int](b, `document.querySelectorAll('#status-charts svg path.line').length`); n < 4 {
		t.Errorf("%d chart lines, want qps plus p50/p95/p99", n)
	}
	// p95 is drawn last (on top), so it shows even where it equals p99 (latency bins).
	if cls := eval[string](b, `(() => { const ls = [...document.querySelectorAll('#status-charts figure')[1].querySelectorAll('path.line')]; return ls.length ? ls[ls.length - 1].getAttribute('class') : ''; })()`); !strings.Contains(cls, "p95") {
		t.Errorf("the latency chart's top line is %q, want p95", cls)
	}
	// Figures are worded for people, not raw field names.
	words := eval[string](b, `[...document.querySelectorAll('#page-status dt, #page-status h3, #status-reasons td:first-child')].map((e) => e.textContent).join(' | ')`)
	for _, raw := range []string{"_", "Window S", "Precision At K", "Low Score Share", "Top1", "Ann Recall"} {
		if strings.Contains(words, raw) {
			t.Errorf("status page labels contain the raw name %q: %s", raw, words)
		}
	}
	hidden := eval[bool](b, `document.querySelector('#status-quality').hidden`)
	if hidden == (len(stats.Quality) > 0) {
		t.Errorf("quality section hidden=%v, stats has %d quality figures", hidden, len(stats.Quality))
	}
	if !hidden {
		if n := eval[int](b, `document.querySelectorAll('#status-quality dd').length`); n == 0 {
			t.Errorf("the quality section shows no figures for %v", stats.Quality)
		}
	}
	if text := b.text("#page-status"); strings.Contains(text, "[object") || strings.Contains(text, "undefined") || strings.Contains(text, "NaN") {
		t.Errorf("status page shows unformatted values: %q", text)
	}
	// A single node answers GET /v1/cluster with 404 not_clustered: no cluster section.
	if !eval[bool](b, `document.querySelector('#status-cluster').hidden`) {
		t.Errorf("a single node's status page shows a cluster section: %q", b.text("#status-cluster"))
	}
	b.noConsoleProblems("/v1/cluster")
}

// TestInvalidFile uploads a text file as the query and to the catalog: both pages must say in
// plain words that it is not an image.
func TestInvalidFile(t *testing.T) {
	s := startServer(t)
	bad := filepath.Join(t.TempDir(), "notes.jpg")
	if err := os.WriteFile(bad, []byte("this is not a photo, just text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, s.URL)
	b.open("#/search", "#search-drop")
	b.upload("#search-file", bad)
	b.wait("error message", `document.querySelector('#search-error .error-box')`, 30*time.Second)
	if msg := b.text("#search-error .error-title"); !strings.Contains(msg, "not an image") {
		t.Errorf("search error %q, want it to say the file is not an image", msg)
	}
	b.open("#/catalog", "#upload-drop")
	b.upload("#upload-files", bad)
	b.wait("upload error", `document.querySelector('.upload-row[data-state=error]')`, 30*time.Second)
	if msg := b.text(".upload-row[data-state=error] .upload-status"); !strings.Contains(msg, "not an image") {
		t.Errorf("upload error %q, want it to say the file is not an image", msg)
	}
	// The browser logs the 4xx responses themselves; anything else is a bug.
	b.noConsoleProblems("the server responded with a status of 4")
}

// TestMetadataIsText shows an item whose metadata holds HTML: it must render as characters, and
// no script or handler from it may run.
func TestMetadataIsText(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.URL)
	b.open("#/item/default/"+xssID, "#item-meta dd")
	if got := b.text("#item-title"); got != xssName {
		t.Errorf("item title %q, want the literal text %q", got, xssName)
	}
	if !strings.Contains(b.text("#item-meta"), "<b>bold</b>") {
		t.Errorf("metadata %q lacks the literal text <b>bold</b>", b.text("#item-meta"))
	}
	if n := eval[int](b, `document.querySelectorAll('#page-item script, #page-item b, #item-meta img, #item-title img').length`); n != 0 {
		t.Errorf("%d elements created from metadata, want 0", n)
	}
	// Cards in the catalog grid show the same metadata.
	b.open("#/catalog", "#catalog-items .card")
	b.findInCatalog(xssID)
	if got := b.text(fmt.Sprintf(`#catalog-items .card[data-id="%s"] .card-title`, xssID)); got != xssName {
		t.Errorf("card title %q, want the literal text", got)
	}
	b.do("hover", 5*time.Second, chromedp.ScrollIntoView(chromedp.CSS(fmt.Sprintf(`#catalog-items .card[data-id="%s"]`, xssID))))
	time.Sleep(300 * time.Millisecond)
	if v := eval[string](b, `String(window.__xss)`); v != "undefined" {
		t.Errorf("window.__xss = %s: markup from metadata ran", v)
	}
	b.noConsoleProblems()
}

// TestCatalogUploadAndDelete uploads two photos with metadata through the catalog page, sees them
// in the grid and deletes one.
func TestCatalogUploadAndDelete(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.URL)
	b.open("#/catalog", "#catalog-items .card")
	b.wait("collection card", `document.querySelector('.collection-card[aria-pressed=true] .collection-count').textContent.includes('items')`, 15*time.Second)
	dir := t.TempDir()
	var files []string
	for _, n := range []int{4 * (seedGroups + 3), 4*(seedGroups+3) + 1} { // an object that is not seeded
		data, err := os.ReadFile(s.photo(n))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("catalog-%d.jpg", n))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	b.do("metadata", 10*time.Second, chromedp.SetValue(chromedp.CSS("#upload-meta"), `{"category": "mugs", "brand": "initech", "price": 7}`))
	b.do("choose photos", 15*time.Second, chromedp.SetUploadFiles(chromedp.CSS("#upload-files"), files, chromedp.NodeReady))
	b.wait("uploads finished", `document.querySelectorAll('.upload-row[data-state=done]').length === 2 || document.querySelector('.upload-row[data-state=error]')`, 60*time.Second)
	b.wait("grid reloaded after the uploads", `!document.querySelector('#catalog-items[aria-busy]')`, 30*time.Second)
	if msg := b.text(".upload-row[data-state=error]"); msg != "" {
		t.Fatalf("upload failed: %s", msg)
	}
	var ids []string
	for _, id := range eval[[]string](b, `[...document.querySelectorAll('.upload-row[data-state=done] a.item-link')].map((a) => a.textContent)`) {
		ids = append(ids, id)
	}
	if len(ids) != 2 {
		t.Fatalf("upload rows link %v, want 2 item ids", ids)
	}
	// The photo names the item, the file name stays in its metadata.
	var item struct {
		Metadata map[string]any `json:"metadata"`
	}
	if code := s.getJSON(t, "/v1/collections/default/items/"+ids[0], &item); code != http.StatusOK || item.Metadata["category"] != "mugs" ||
		!strings.HasPrefix(ids[0], "img-") || !strings.HasPrefix(fmt.Sprint(item.Metadata["file_name"]), "catalog-") {
		t.Errorf("GET item %s: HTTP %d, metadata %v; want a content id, category mugs and the file name", ids[0], code, item.Metadata)
	}
	// More items than one page: the grid offers Load more, and it brings new cards.
	if n := eval[int](b, `document.querySelectorAll('#catalog-items .card').length`); n != 30 {
		t.Errorf("catalog grid shows %d items, want a first page of 30", n)
	}
	b.do("load more", 10*time.Second, chromedp.Click(chromedp.CSS("#catalog-more")))
	b.wait("second page", `document.querySelectorAll('#catalog-items .card').length > 30`, 15*time.Second)
	sel := fmt.Sprintf(`#catalog-items .card[data-id="%s"]`, ids[0])
	b.findInCatalog(ids[0])
	b.do("delete", 15*time.Second,
		chromedp.Click(chromedp.CSS(sel+" .delete")),
		chromedp.Click(chromedp.CSS(sel+" .delete.armed")))
	b.wait("card removed", fmt.Sprintf(`!document.querySelector(%q)`, sel), 15*time.Second)
	if code := s.getJSON(t, "/v1/collections/default/items/"+ids[0], nil); code != http.StatusNotFound {
		t.Errorf("GET deleted item %s: HTTP %d, want 404", ids[0], code)
	}
	b.noConsoleProblems()
}

// findInCatalog waits for the card of item id in the catalog grid, pressing Load more as needed.
func (b *browser) findInCatalog(id string) {
	b.t.Helper()
	b.wait("card "+id+" in the catalog grid", fmt.Sprintf(`document.querySelector('#catalog-items .card[data-id=%s]') ||
		(document.querySelector('#catalog-more:not([hidden]):not(:disabled)') && void document.querySelector('#catalog-more').click())`, quote(id)), 30*time.Second)
}

func first(ss []string) string {
	if len(ss) == 0 {
		return "(none)"
	}
	return ss[0]
}

// TestKeyboardAndPhone uses the app on a phone-sized screen with the keyboard only: no page
// scrolls sideways, Tab reaches the photo picker, and Enter on a result opens its item page.
func TestKeyboardAndPhone(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.URL)
	b.do("phone viewport", 10*time.Second, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	noSideScroll := func(page string) {
		t.Helper()
		if w := eval[int](b, `document.documentElement.scrollWidth - window.innerWidth`); w > 0 {
			t.Errorf("%s is %d px wider than a 390 px screen", page, w)
		}
	}
	b.open("#/search", "#search-drop")
	noSideScroll("search page")
	reached := false
	for range 15 {
		b.do("tab", 5*time.Second, chromedp.KeyEvent(kb.Tab))
		if eval[string](b, `document.activeElement && document.activeElement.id`) == "search-file" {
			reached = true
			break
		}
	}
	if !reached {
		t.Fatalf("Tab never reached the photo picker (#search-file)")
	}
	if ring := eval[string](b, `getComputedStyle(document.querySelector('label[for=search-file]')).boxShadow`); ring == "none" {
		t.Errorf("the focused photo picker shows no focus ring on its label")
	}
	b.upload("#search-file", s.photo(19))
	b.wait("results", fmt.Sprintf(`document.querySelector(%q)`, resultCards), 60*time.Second)
	noSideScroll("search results")
	id := b.ids(resultCards)[0]
	b.do("focus the first result", 5*time.Second, chromedp.Focus(chromedp.CSS("#results .card a")), chromedp.KeyEvent(kb.Enter))
	b.wait("item page", fmt.Sprintf(`location.hash === '#/item/default/' + %s && document.querySelector('#item-meta dd')`, quote(id)), 15*time.Second)
	noSideScroll("item page")
	for _, p := range []struct{ route, ready string }{{"#/catalog", "#catalog-items .card"}, {"#/status", "#tile-size"}} {
		b.open(p.route, p.ready)
		noSideScroll(p.route)
	}
	// The skip link is the first stop and jumps to the content without leaving the page.
	b.do("skip link", 10*time.Second, chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Enter))
	b.wait("focus on main", `document.activeElement && document.activeElement.id === 'main'`, 5*time.Second)
	if hash := eval[string](b, `location.hash`); hash != "#/status" {
		t.Errorf("after the skip link the page is %q, want #/status", hash)
	}
	b.noConsoleProblems("/v1/cluster") // a single node's 404 not_clustered
}

// TestPasteAndDrop pastes a photo from the clipboard into the search page and drops two photos on
// the catalog's drop zone: both paths must reach the API like a picked file.
func TestPasteAndDrop(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.URL)
	b.open("#/search", "#search-drop")
	// The clipboard and drag data come from the item thumbnails: real JPEGs, same origin.
	const fileFrom = `async (id, name) => {
		const res = await fetch('/v1/collections/default/items/' + id + '/thumbnail');
		return new File([await res.blob()], name, {type: 'image/jpeg'});
	}`
	b.do("paste a photo", 15*time.Second, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(async () => {
		const file = await (%s)(%s, 'pasted.jpg');
		const dt = new DataTransfer();
		dt.items.add(file);
		document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true}));
	})()`, fileFrom, quote(seedID(8))), chromedp.EvalAwaitPromise))
	b.wait("results for the pasted photo", fmt.Sprintf(`document.querySelector(%q) || document.querySelector('#search-error .error-box')`, resultCards), 60*time.Second)
	if msg := b.text("#search-error"); msg != "" {
		t.Fatalf("search with a pasted photo failed: %s", msg)
	}
	if got := b.ids(resultCards); !slices.Contains(groupIDs(2), got[0]) {
		t.Errorf("pasted thumbnail of %s: first result %s, want a photo of object 2 %v", seedID(8), got[0], groupIDs(2))
	}

	b.open("#/catalog", "#upload-drop")
	b.do("drop two photos", 15*time.Second, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(async () => {
		const dt = new DataTransfer();
		dt.items.add(await (%[1]s)(%[2]s, 'dropped-a.jpg'));
		dt.items.add(await (%[1]s)(%[3]s, 'dropped-b.jpg'));
		const zone = document.querySelector('#upload-drop');
		zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
		zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
	})()`, fileFrom, quote(seedID(12)), quote(seedID(13))), chromedp.EvalAwaitPromise))
	b.wait("dropped uploads", `document.querySelectorAll('.upload-row[data-state=done]').length === 2 || document.querySelector('.upload-row[data-state=error]')`, 60*time.Second)
	if msg := b.text(".upload-row[data-state=error]"); msg != "" {
		t.Fatalf("upload of dropped photos failed: %s", msg)
	}
	// The dropped files are thumbnails of catalog photos: the server reports them as near-duplicates.
	if note := b.text(".upload-row .dup-note"); !strings.Contains(note, seedID(12)) && !strings.Contains(note, seedID(13)) {
		t.Errorf("upload rows show no near-duplicate note (got %q); want a link to %s or %s", note, seedID(12), seedID(13))
	}
	// Each dropped photo is an item named by its content, with its file name kept as metadata.
	links := eval[map[string]string](b, `Object.fromEntries([...document.querySelectorAll('.upload-row[data-state=done]')].map((r) =>
		[r.querySelector('.upload-name').textContent, r.querySelector('a.item-link').textContent]))`)
	for _, name := range []string{"dropped-a.jpg", "dropped-b.jpg"} {
		var item struct {
			Metadata map[string]any `json:"metadata"`
		}
		if code := s.getJSON(t, "/v1/collections/default/items/"+links[name], &item); code != http.StatusOK || item.Metadata["file_name"] != name {
			t.Errorf("GET %s (dropped as %s): HTTP %d, metadata %v; want file_name %s", links[name], name, code, item.Metadata, name)
		}
	}
	b.noConsoleProblems()
}

// TestFolderDrop drops a folder (with a subfolder, a text file and a hidden file) on the catalog's
// drop zone, as the operating system does: the page walks it with webkitGetAsEntry, uploads the
// photos, skips the rest and says so.
func TestFolderDrop(t *testing.T) {
	s := startServer(t)
	dir := filepath.Join(t.TempDir(), "shoot")
	if err := os.MkdirAll(filepath.Join(dir, "shelf"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]int{"folder-a.jpg": 4*(seedGroups+5) + 0, "shelf/folder-b.jpg": 4*(seedGroups+6) + 0}
	for name, n := range files {
		data, err := os.ReadFile(s.photo(n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range map[string]string{"notes.txt": "shot list\n", ".DS_Store": "junk"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t, s.URL)
	b.open("#/catalog", "#upload-drop")
	r := b.rect("#upload-drop")
	x, y := r.X+r.W/2, r.Y+r.H/2
	data := &input.DragData{Items: []*input.DragDataItem{}, Files: []string{dir}, DragOperationsMask: 1}
	b.do("drop a folder", 15*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for _, typ := range []input.DispatchDragEventType{input.DispatchDragEventTypeDragEnter, input.DispatchDragEventTypeDragOver, input.DispatchDragEventTypeDrop} {
			if _, err := cdp.Call(ctx, tg, input.DispatchDragEvent, input.DispatchDragEventParams{Type: typ, X: x, Y: y, Data: data}); err != nil {
				return err
			}
		}
		return nil
	}))
	b.wait("folder uploads", `document.querySelectorAll('.upload-row[data-state=done]').length === 2 || document.querySelector('.upload-row[data-state=error]')`, 60*time.Second)
	rows := eval[[]string](b, `[...document.querySelectorAll('.upload-row')].map((r) => r.dataset.state + ' ' + r.querySelector('.upload-name').textContent)`)
	slices.Sort(rows)
	want := []string{"done shoot/folder-a.jpg", "done shoot/shelf/folder-b.jpg", "skipped shoot/notes.txt"}
	if !slices.Equal(rows, want) {
		t.Errorf("upload rows %q, want %q (photos uploaded, text skipped, hidden file ignored)", rows, want)
	}
	// Each photo is its own item, named by its content; its path in the folder is kept as metadata.
	links := eval[map[string]string](b, `Object.fromEntries([...document.querySelectorAll('.upload-row[data-state=done]')].map((r) =>
		[r.querySelector('.upload-name').textContent, r.querySelector('a.item-link').textContent]))`)
	for _, name := range []string{"shoot/folder-a.jpg", "shoot/shelf/folder-b.jpg"} {
		var item struct {
			Metadata map[string]any `json:"metadata"`
		}
		if code := s.getJSON(t, "/v1/collections/default/items/"+links[name], &item); code != http.StatusOK || item.Metadata["file_name"] != name {
			t.Errorf("GET %s (uploaded from %s): HTTP %d, metadata %v; want file_name %s", links[name], name, code, item.Metadata, name)
		}
	}
	if links["shoot/folder-a.jpg"] == links["shoot/shelf/folder-b.jpg"] {
		t.Errorf("two photos became one item %s", links["shoot/folder-a.jpg"])
	}
	b.noConsoleProblems()
}

// TestCollections creates a collection on the catalog page, uploads into it, opens its item by a
// deep link while another collection is selected, and switches back with the header picker.
func TestCollections(t *testing.T) {
	s := startServer(t)
	name := fmt.Sprintf("second-%d", time.Now().UnixNano()%1e6)
	b := newBrowser(t, s.URL)
	b.open("#/catalog", "#catalog-items .card")
	// The rule for names is stated in words where a name is typed, and a name the server would
	// refuse (capitals, a dot) is refused here with the same words.
	rule := b.text("#new-collection-rule")
	if !strings.Contains(rule, "lowercase") || strings.ContainsAny(rule, "[]{}^$") {
		t.Errorf("collection name rule %q: want it in words, not a pattern", rule)
	}
	b.do("a name the server refuses", 15*time.Second, chromedp.SendKeys(chromedp.CSS("#new-collection"), "Summer.Shoes"+kb.Enter))
	b.wait("refusal", `document.querySelector('#toasts .toast.error')`, 10*time.Second)
	if msg := b.text("#toasts .toast.error"); !strings.Contains(msg, rule) {
		t.Errorf("refusal says %q, want the rule %q", msg, rule)
	}
	for _, c := range eval[[]string](b, `[...document.querySelectorAll('#collection option')].map((o) => o.value)`) {
		if c == "Summer.Shoes" || c == "summer.shoes" {
			t.Errorf("the refused name became a collection")
		}
	}
	b.do("clear the name", 5*time.Second, chromedp.Evaluate[chromedp.Void](`document.querySelector('#new-collection').value = ''`))
	b.do("create a collection", 15*time.Second,
		chromedp.SendKeys(chromedp.CSS("#new-collection"), name+kb.Enter))
	b.wait("new collection selected", fmt.Sprintf(`document.querySelector('.collection-card[aria-pressed=true]') &&
		document.querySelector('.collection-card[aria-pressed=true]').dataset.name === %s && document.querySelector('#collection').value === %s`, quote(name), quote(name)), 15*time.Second)
	if got := b.text(".collection-card[aria-pressed=true] .collection-count"); got != "0 items" {
		t.Errorf("new collection card says %q, want 0 items", got)
	}
	b.upload("#upload-files", s.photo(4*(seedGroups+7)))
	b.wait("upload", `document.querySelector('.upload-row[data-state=done] a.item-link') || document.querySelector('.upload-row[data-state=error]')`, 60*time.Second)
	if msg := b.text(".upload-row[data-state=error]"); msg != "" {
		t.Fatalf("upload into %s failed: %s", name, msg)
	}
	id := b.text(".upload-row[data-state=done] a.item-link")
	var list struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if code := s.getJSON(t, "/v1/collections/"+name+"/items", &list); code != http.StatusOK || len(list.Items) != 1 || list.Items[0].ID != id {
		t.Errorf("GET %s items: HTTP %d %+v, want just %s", name, code, list, id)
	}

	// A fresh tab remembers the choice; pick default again, then deep-link into the new collection.
	b2 := newBrowser(t, s.URL)
	b2.open("#/search", "#search-drop")
	b2.do("pick default", 10*time.Second,
		chromedp.SetValue(chromedp.CSS("#collection"), "default"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#collection').dispatchEvent(new Event('change'))`))
	b2.open("#/item/"+name+"/"+id, "#item-meta dd")
	b2.wait("item of the other collection", fmt.Sprintf(`location.hash.startsWith('#/item/') && document.querySelector('#collection').value === %s`, quote(name)), 10*time.Second)
	if crumbs := b2.text("#item-crumbs"); !strings.Contains(crumbs, name) {
		t.Errorf("item crumbs %q, want the collection %s", crumbs, name)
	}
	b2.do("switch back", 10*time.Second,
		chromedp.SetValue(chromedp.CSS("#collection"), "default"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#collection').dispatchEvent(new Event('change'))`))
	b2.wait("back on search", `location.hash === '#/search'`, 10*time.Second)
	b.noConsoleProblems()
	b2.noConsoleProblems()
}
