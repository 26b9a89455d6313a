package ui_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestShareableSearch: a search by photo gets a URL naming the photo the server keeps (and the
// region searched); reloading it, or opening it in another browser, shows the same search. A
// search by item has a URL with the item id; a URL whose photo is gone says so in words.
func TestShareableSearch(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.URL)
	b.searchFor(s.photo(4*2 + 3))
	b.wait("URL with the kept photo", `location.hash.includes('photo=')`, 15*time.Second)
	// A region (keyboard: Enter puts a box in the middle) goes into the URL as well.
	b.do("region", 10*time.Second, chromedp.Focus(chromedp.CSS(".stage")), chromedp.KeyEvent("\r"))
	b.wait("region search", `location.hash.includes('crop=') && document.querySelector('#results-summary').textContent.includes('region') && !document.querySelector('#results[aria-busy]')`, 60*time.Second)
	// And a filter.
	b.wait("category filter", `document.querySelector('#filter-category option[value="watches"]')`, 15*time.Second)
	b.do("choose a category", 10*time.Second,
		chromedp.SetValue(chromedp.CSS("#filter-category"), "watches"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#filter-category').dispatchEvent(new Event('change'))`))
	b.wait("filtered search", `location.hash.includes('f=') && document.querySelector('#results-summary').textContent.includes('1 filter') && !document.querySelector('#results[aria-busy]')`, 60*time.Second)
	url := eval[string](b, `location.href`)
	want := b.ids(allCards)
	crop := b.text("#crop-info")
	if len(want) == 0 || !strings.Contains(crop, "px") {
		t.Fatalf("region search shows %v, crop info %q", want, crop)
	}
	restored := func(b *browser, what string) {
		t.Helper()
		b.wait(what, fmt.Sprintf(`document.querySelector(%q) && !document.querySelector('#results[aria-busy]') && document.querySelector('.stage-img').naturalWidth > 0`, allCards), 60*time.Second)
		if got := b.ids(allCards); !slices.Equal(got, want) {
			t.Errorf("%s: results %v, want %v", what, got, want)
		}
		if got := b.text("#crop-info"); got != crop {
			t.Errorf("%s: crop info %q, want %q", what, got, crop)
		}
		if got := eval[string](b, `location.href`); got != url {
			t.Errorf("%s: URL %s, want %s", what, got, url)
		}
		if got := eval[string](b, `document.querySelector('#filter-category').value`); got != "watches" {
			t.Errorf("%s: category filter %q, want watches", what, got)
		}
	}
	b.do("reload", 30*time.Second, chromedp.Reload())
	restored(b, "after a reload")

	b2 := newBrowser(t, s.URL)
	b2.do("open the shared URL", 30*time.Second, chromedp.Navigate(url))
	restored(b2, "shared URL in another browser")

	// By item: the URL names the item; the page ranks like its similar items.
	var sim struct {
		Results []struct {
			ID string `json:"id"`
		} `json:"results"`
	}
	if code := s.getJSON(t, "/v1/collections/default/items/"+seedID(4)+"/similar?k=24", &sim); code != http.StatusOK {
		t.Fatalf("similar: HTTP %d", code)
	}
	var simIDs []string
	for _, r := range sim.Results {
		simIDs = append(simIDs, r.ID)
	}
	b2.open("#/search?c=default&item="+seedID(4), allCards)
	b2.wait("item search settled", `!document.querySelector('#results[aria-busy]')`, 30*time.Second)
	if got := b2.ids(allCards); !slices.Equal(got, simIDs) {
		t.Errorf("item URL: results %v, want the item's similar items %v", got, simIDs)
	}

	// A photo the server no longer keeps: a message in words, and the photo picker again.
	b2.open("#/search?c=default&photo=pgone", "#search-error .error-box")
	if msg := b2.text("#search-error .error-title"); !strings.Contains(msg, "no longer kept") {
		t.Errorf("expired photo URL says %q, want that the photo is no longer kept", msg)
	}
	if eval[bool](b2, `document.querySelector('#search-drop').hidden`) {
		t.Errorf("expired photo URL: the photo picker is hidden")
	}
	b.noConsoleProblems()
	b2.noConsoleProblems("the server responded with a status of 404")
}
