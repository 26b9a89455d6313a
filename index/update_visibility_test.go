package index

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
)

// TestMetadataUpdateKeepsItemSearchable: while an item's metadata is rewritten (as merges and
// tags do, keeping its vector) every concurrent search still finds it, through the graph and by
// brute force; a new vector still moves it.
func TestMetadataUpdateKeepsItemSearchable(t *testing.T) {
	for _, exact := range []bool{false, true} {
		t.Run(fmt.Sprintf("exact=%v", exact), func(t *testing.T) {
			db := openTestDB(t, "", &Options{ExactThreshold: -1})
			c, err := db.CreateCollection("u", CollectionConfig{Fingerprint: "m", Dims: 8})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 40; i++ {
				if _, err := c.Put(ctx, Item{ID: fmt.Sprintf("n%02d", i), Vector: unitVec(8, i)}); err != nil {
					t.Fatal(err)
				}
			}
			target := Item{ID: "target", Vector: []float32{1, 1, 1, 1, 1, 1, 1, 0.5}}
			if _, err := c.Put(ctx, target); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					_, err := c.Update(ctx, "target", func(it *Item) error {
						it.Metadata = json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))
						return nil
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
			misses := 0
			for i := 0; i < 2000; i++ {
				res, err := c.Search(ctx, target.Vector, SearchOptions{K: 1, Exact: exact})
				if err != nil {
					t.Fatal(err)
				}
				if len(res) == 0 || res[0].ID != "target" {
					misses++
				}
			}
			close(stop)
			wg.Wait()
			if misses > 0 {
				t.Errorf("%d of 2000 searches missed an item whose metadata was being updated", misses)
			}
			// A new vector is linked anew: the item is found by it, not by the old one.
			moved := []float32{0, 0, 0, 0, 0, 0, 1, 1}
			if _, err := c.Update(ctx, "target", func(it *Item) error { it.Vector = moved; return nil }); err != nil {
				t.Fatal(err)
			}
			if res, _ := c.Search(ctx, moved, SearchOptions{K: 1}); len(res) == 0 || res[0].ID != "target" || res[0].Score < 0.999 {
				t.Errorf("after a vector change, search by the new vector: %+v", res)
			}
		})
	}
}
