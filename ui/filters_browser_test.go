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

// TestFilterMultiSelect: a keyword field with many values (55 categories, more than /fields
// lists) gets a searchable multi-select that says its list was cut; picking two values filters the
// results to either.
func TestFilterMultiSelect(t *testing.T) {
	s := startServer(t)
	const col = "many-values"
	if err := s.createCollection(col); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{} // category → item ids
	for i := range 60 {
		cat := fmt.Sprintf("cat-%02d", i%55)
		id := fmt.Sprintf("mv-%02d", i)
		resp, body, err := s.postImage("/v1/collections/"+col+"/items", s.photo(i), map[string]string{"id": id, "metadata": mustJSON(map[string]any{"category": cat})})
		if err != nil || resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			t.Fatalf("add %s: %v %s", id, err, body)
		}
		want[cat] = append(want[cat], id)
	}
	b := newBrowser(t, s.URL)
	b.open("#/search", "#search-drop")
	b.do("pick the collection", 10*time.Second,
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const sel = document.querySelector('#collection');
			if (![...sel.options].some((o) => o.value === %[1]s)) sel.append(new Option(%[1]s, %[1]s));
			sel.value = %[1]s; sel.dispatchEvent(new Event('change')); })()`, quote(col))))
	b.searchFor(s.photo(70))
	b.wait("category multi-select", `document.querySelector('#filter-category-q')`, 15*time.Second)
	if n := eval[int](b, `document.querySelectorAll('#filter-category-list input[type=checkbox]').length`); n != 50 {
		t.Errorf("multi-select lists %d values, want the 50 /fields returns", n)
	}
	if note := b.text("#filter-category-cut"); !strings.Contains(note, "most common") {
		t.Errorf("truncation note %q, want it to say only the most common values are listed", note)
	}
	visible := func() []string {
		return eval[[]string](b, `[...document.querySelectorAll('#filter-category-list li')].filter((li) => !li.hidden).map((li) => li.textContent)`)
	}
	b.do("search the values", 10*time.Second, chromedp.SendKeys(chromedp.CSS("#filter-category-q"), "cat-0"))
	if got := visible(); len(got) != 10 || !slices.Contains(got, "cat-03") || !slices.Contains(got, "cat-07") {
		t.Errorf("values matching cat-0: %v, want cat-00..cat-09", got)
	}
	for _, v := range []string{"cat-03", "cat-07"} {
		b.do("pick "+v, 10*time.Second, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#filter-category-list input[value=%q]`, v))))
	}
	// The search with both values (the URL names the filter as the search starts).
	b.wait("filtered results", fmt.Sprintf(`decodeURIComponent(location.hash).includes('cat-07') && decodeURIComponent(location.hash).includes('cat-03') &&
		!document.querySelector('#results[aria-busy]') && document.querySelector(%q)`, allCards), 30*time.Second)
	got := b.ids(allCards)
	expect := append(append([]string{}, want["cat-03"]...), want["cat-07"]...)
	slices.Sort(got)
	slices.Sort(expect)
	if !slices.Equal(got, expect) {
		t.Errorf("results with category cat-03 or cat-07: %v, want %v", got, expect)
	}
	if p := b.text("#filter-category-picked"); !strings.Contains(p, "cat-03") || !strings.Contains(p, "cat-07") {
		t.Errorf("picked values line %q", p)
	}
	b.do("no match", 10*time.Second, chromedp.SendKeys(chromedp.CSS("#filter-category-q"), "zzz"))
	if got := visible(); len(got) != 0 || eval[bool](b, `document.querySelector('.multi-none').hidden`) {
		t.Errorf("values matching cat-0zzz: %v, want none and a 'No value matches' line", got)
	}
	b.noConsoleProblems()
}
