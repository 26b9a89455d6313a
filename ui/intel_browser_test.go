package ui_test

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDuplicatesPage fills its own collection with two objects, an exact copy and a half-size
// copy of one photo, then reviews the cluster in the page: it keeps the half-size copy (the others
// are pre-ticked for deletion), unticks nothing, sees the exact ids in the confirmation, confirms
// (the original and the exact copy leave the catalog, the kept one and the others stay), then
// undoes it (both come back).
func TestDuplicatesPage(t *testing.T) {
	s := startServer(t)
	const col = "dupes-ui"
	if err := s.createCollection(col); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		req, _ := http.NewRequest(http.MethodDelete, s.URL+"/v1/collections/"+col+"?confirm="+col, nil)
		if r, err := http.DefaultClient.Do(req); err == nil {
			r.Body.Close()
		}
	})
	add := func(path, id string) {
		t.Helper()
		r, body, err := s.postImage("/v1/collections/"+col+"/items", path, map[string]string{"id": id})
		if err != nil || r.StatusCode != http.StatusCreated {
			t.Fatalf("add %s: %v %d %s", id, err, r.StatusCode, body)
		}
	}
	for _, n := range []int{0, 1, 8} {
		add(s.photo(n), seedID(n))
	}
	add(s.photo(0), "copy-exact")
	half := filepath.Join(t.TempDir(), "half.png")
	writeHalfSize(t, s.photo(0), half)
	add(half, "copy-half")

	b := newBrowser(t, s.URL)
	b.open("#/duplicates", "#page-duplicates")
	b.wait("the collection in the picker", fmt.Sprintf(`document.querySelector('#collection option[value=%q]')`, col), 15*time.Second)
	eval[bool](b, fmt.Sprintf(`(() => { const s = document.querySelector('#collection'); s.value = %q;
		s.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`, col))
	b.wait("a duplicate cluster", `document.querySelector('#dup-clusters .dup-cluster')`, 60*time.Second)
	ids := eval[[]string](b, `[...document.querySelectorAll('#dup-clusters .dup-cluster .card')].map((e) => e.dataset.id)`)
	if strings.Join(ids, ",") != "copy-exact,copy-half,ukbench00000" && strings.Join(ids, ",") != "copy-exact,ukbench00000,copy-half" {
		t.Fatalf("cluster %v, want copy-exact first with ukbench00000 and copy-half", ids)
	}
	if n := eval[int](b, `document.querySelectorAll('#dup-clusters .dup-cluster').length`); n != 1 {
		t.Errorf("%d clusters, want 1", n)
	}
	// On a 390 px phone screen the page, its tier selector included, fits the width.
	b.do("phone viewport", 10*time.Second, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.wait("phone layout", `window.innerWidth === 390`, 5*time.Second)
	if w := eval[int](b, `document.documentElement.scrollWidth - window.innerWidth`); w > 0 {
		t.Errorf("the duplicates page is %d px wider than a 390 px screen", w)
	}
	if r := b.rect("#dup-tier"); r.X < 0 || r.X+r.W > 390 {
		t.Errorf("the tier selector spans %.0f..%.0f px of a 390 px screen", r.X, r.X+r.W)
	}
	b.do("desktop viewport", 10*time.Second, chromedp.EmulateReset())
	if tiers := b.text("#dup-clusters .dup-cluster"); !strings.Contains(tiers, "exact duplicate") || !strings.Contains(tiers, "near duplicate") {
		t.Errorf("cluster text %q lacks the tiers", tiers)
	}
	if n := eval[int](b, `document.querySelectorAll('#dup-clusters .delete-choice:checked').length`); n != 0 {
		t.Fatalf("%d items ticked for deletion before anything was chosen", n)
	}
	if !eval[bool](b, `document.querySelector('#dup-clusters .dup-review').disabled`) {
		t.Fatal("the delete button is enabled before an item to keep is chosen")
	}
	b.do("keep the half-size copy", 10*time.Second, chromedp.Click(chromedp.CSS(`#dup-clusters input.keep-choice[value="copy-half"]`)))
	ticked := eval[[]string](b, `[...document.querySelectorAll('#dup-clusters .delete-choice:checked')].map((e) => e.dataset.id).sort()`)
	if strings.Join(ticked, ",") != "copy-exact,ukbench00000" {
		t.Fatalf("ticked for deletion %v, want the two others", ticked)
	}
	b.do("review the deletion", 10*time.Second, chromedp.Click(chromedp.CSS(`#dup-clusters .dup-review`)))
	b.wait("the confirmation", `document.querySelector('#dup-clusters .dup-confirm')`, 10*time.Second)
	listed := eval[[]string](b, `[...document.querySelectorAll('#dup-clusters .dup-confirm-ids li')].map((e) => e.textContent).sort()`)
	if strings.Join(listed, ",") != "copy-exact,ukbench00000" {
		t.Fatalf("the confirmation lists %v", listed)
	}
	status := func(id string) int {
		r, err := http.Get(s.URL + "/v1/collections/" + col + "/items/" + id)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	if status("ukbench00000") != 200 {
		t.Fatal("an item was deleted before the confirmation")
	}
	b.do("confirm", 10*time.Second, chromedp.Click(chromedp.CSS(`#dup-clusters .dup-confirm-yes`)))
	b.wait("cluster resolved", `document.querySelector('#dup-clusters .dup-done')`, 30*time.Second)
	if got := b.text("#dup-clusters .dup-done"); !strings.Contains(got, "Kept copy-half; moved 2 items to the trash") {
		t.Errorf("resolution says %q", got)
	}
	for id, want := range map[string]int{"copy-half": 200, "copy-exact": 404, "ukbench00000": 404, "ukbench00001": 200, "ukbench00008": 200} {
		if got := status(id); got != want {
			t.Errorf("after keeping copy-half, %s answers %d, want %d", id, got, want)
		}
	}
	b.do("undo", 10*time.Second, chromedp.Click(chromedp.CSS(`#dup-clusters .dup-undo`)))
	b.wait("restored", `document.querySelector('#dup-clusters .dup-undone')`, 30*time.Second)
	for _, id := range []string{"copy-exact", "ukbench00000", "copy-half"} {
		if got := status(id); got != 200 {
			t.Errorf("after undo, %s answers %d", id, got)
		}
	}
	// The similar tier ticks nothing on its own: every deletion there is picked by hand.
	pickTier := func(tier string) {
		eval[bool](b, fmt.Sprintf(`(() => { const s = document.querySelector('#dup-tier'); s.value = %q;
			s.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`, tier))
	}
	pickTier("similar")
	b.wait("a similar cluster", `document.querySelector('#dup-clusters .dup-cluster input.keep-choice')`, 60*time.Second)
	b.do("keep one", 10*time.Second, chromedp.Click(chromedp.CSS(`#dup-clusters input.keep-choice`)))
	if n := eval[int](b, `document.querySelectorAll('#dup-clusters .delete-choice:checked').length`); n != 0 {
		t.Errorf("similar tier: %d items ticked for deletion without a click", n)
	}
	// Delete the copies for good (through the page's own steps) so the rescan finds nothing.
	pickTier("near")
	b.wait("the near cluster again", `document.querySelector('#dup-clusters .dup-cluster input.keep-choice[value="copy-half"]')`, 60*time.Second)
	b.do("keep the half-size copy again", 10*time.Second, chromedp.Click(chromedp.CSS(`#dup-clusters input.keep-choice[value="copy-half"]`)))
	b.do("review", 10*time.Second, chromedp.Click(chromedp.CSS(`#dup-clusters .dup-review`)))
	b.do("confirm", 10*time.Second, chromedp.Click(chromedp.CSS(`#dup-clusters .dup-confirm-yes`)))
	b.wait("resolved again", `document.querySelector('#dup-clusters .dup-done')`, 30*time.Second)
	// Rescanning finds nothing left.
	b.do("find again", 10*time.Second, chromedp.Click(chromedp.CSS("#dup-find")))
	b.wait("no duplicates", `/No duplicates/.test(document.querySelector('#dup-summary').textContent)`, 30*time.Second)
	b.noConsoleProblems()
}

// TestExplainInResults asks why the first search result matched: its thumbnail turns into the
// server's heatmap and back.
func TestExplainInResults(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.URL)
	b.searchFor(s.photo(3))
	first := resultCards + ":first-child"
	photoSrc := eval[string](b, fmt.Sprintf(`document.querySelector(%q).getAttribute('src')`, first+" .thumb img"))
	b.do("why it matched", 10*time.Second, chromedp.Click(chromedp.CSS(first+" button.why")))
	b.wait("heatmap shown", fmt.Sprintf(`document.querySelector(%q).classList.contains('explained')`, first), 60*time.Second)
	ok := eval[bool](b, fmt.Sprintf(`(async () => { const img = document.querySelector(%q);
		if (!img.src.startsWith('blob:')) return false;
		if (!img.complete) await new Promise((r) => img.addEventListener('load', r, {once: true}));
		return img.naturalWidth > 0; })()`, first+" .thumb img"))
	if !ok {
		t.Fatalf("the heatmap did not load; button says %q", b.text(first+" button.why"))
	}
	if p := eval[string](b, fmt.Sprintf(`document.querySelector(%q).getAttribute('aria-pressed')`, first+" button.why")); p != "true" {
		t.Errorf("aria-pressed %q after showing the heatmap", p)
	}
	// A legend says what the colours mean, and the whole photo shows (its box takes the photo's shape).
	if legend := b.text(first + " .heat-legend"); !strings.Contains(legend, "Matches your photo") || !strings.Contains(legend, "more") {
		t.Errorf("heatmap legend %q", legend)
	}
	if d := eval[float64](b, fmt.Sprintf(`(() => { const img = document.querySelector(%q), r = img.getBoundingClientRect();
		return Math.abs(r.width / r.height - img.naturalWidth / img.naturalHeight); })()`, first+" .thumb img")); d > 0.03 {
		t.Errorf("the heatmap is shown cut or banded (aspect off by %.3f)", d)
	}
	b.do("back to the photo", 10*time.Second, chromedp.Click(chromedp.CSS(first+" button.why")))
	if src := eval[string](b, fmt.Sprintf(`document.querySelector(%q).getAttribute('src')`, first+" .thumb img")); src != photoSrc {
		t.Errorf("photo src %q after toggling back, want %q", src, photoSrc)
	}
	if n := eval[int](b, fmt.Sprintf(`document.querySelectorAll(%q).length`, first+" .heat-legend")); n != 0 {
		t.Errorf("the legend stays after the photo is back")
	}
	b.noConsoleProblems()
}

func writeHalfSize(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	bd := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, bd.Dx()/2, bd.Dy()/2))
	for y := range out.Bounds().Dy() {
		for x := range out.Bounds().Dx() {
			out.Set(x, y, img.At(bd.Min.X+2*x, bd.Min.Y+2*y))
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, out); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
