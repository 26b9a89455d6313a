package index

import (
	"fmt"
	"slices"
	"testing"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// TestScrollAndCount pages through a collection with and without a filter, with pages cut by the
// scan bound, and checks that the pages together list exactly the matching items, in id order,
// each once, and that Count agrees.
func TestScrollAndCount(t *testing.T) {
	db := openTestDB(t, "", nil)
	c, err := db.CreateCollection("s", CollectionConfig{Fingerprint: "m", Dims: 8})
	if err != nil {
		t.Fatal(err)
	}
	items := mkItems(synth.Clustered(120, 8, 3, 1.0, 5), "it", func(i int) string {
		return fmt.Sprintf(`{"colour":%q,"price":%d}`, []string{"red", "blue", "green"}[i%3], i)
	})
	upsertAll(t, c, items, 40)
	for _, tc := range []struct {
		name          string
		filter        string
		limit, scan   int
		want          func(i int) bool
		shortPagesToo bool
	}{
		{"all", "", 7, 0, func(int) bool { return true }, false},
		{"keyword", `colour = "red"`, 5, 0, func(i int) bool { return i%3 == 0 }, false},
		{"range, scan-bounded", `price >= 100`, 50, 30, func(i int) bool { return i >= 100 }, true},
		{"none match", `price < 0`, 10, 25, func(int) bool { return false }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f *Filter
			if tc.filter != "" {
				if f, err = ParseFilter(tc.filter); err != nil {
					t.Fatal(err)
				}
			}
			var want []string
			for i, it := range items {
				if tc.want(i) {
					want = append(want, it.ID)
				}
			}
			var got []string
			cursor, pages, short := "", 0, false
			for {
				page, next, err := c.Scroll(ScrollOptions{Cursor: cursor, Limit: tc.limit, Filter: f, MaxScan: tc.scan, WithVector: true})
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range page {
					got = append(got, it.ID)
					if len(it.Vector) != 8 || it.Version == 0 {
						t.Fatalf("item %s: vector %d dims, version %d", it.ID, len(it.Vector), it.Version)
					}
				}
				short = short || next != "" && len(page) < tc.limit
				if pages++; next == "" || pages > 200 {
					break
				}
				cursor = next
			}
			if !slices.Equal(got, want) {
				t.Fatalf("scrolled %d ids, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
			}
			if short != tc.shortPagesToo {
				t.Errorf("a page shorter than the limit with a next cursor: %v, want %v", short, tc.shortPagesToo)
			}
			if n, err := c.Count(f); err != nil || n != len(want) {
				t.Errorf("Count = %d, %v; want %d", n, err, len(want))
			}
		})
	}
	// A deleted item leaves the count and the pages.
	if _, err := c.Delete(ctx, items[0].ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Count(nil); n != len(items)-1 {
		t.Errorf("Count after a delete = %d, want %d", n, len(items)-1)
	}
	if page, _, _ := c.Scroll(ScrollOptions{Limit: 1}); page[0].ID != items[1].ID {
		t.Errorf("first item after the delete is %s", page[0].ID)
	}
}
