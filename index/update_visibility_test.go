package index

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
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
			stop := untilStopped(t, 1, func(_, i int) error {
				_, err := c.Update(ctx, "target", func(it *Item) error {
					it.Metadata = json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))
					return nil
				})
				return err
			})
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
			stop()
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

// TestNewVectorKeepsItemSearchable: while an item's vector is replaced again and again (a new
// photo for the same id), every concurrent search near both its photos finds it exactly once,
// through the graph and by brute force, and no search returns a slot without an id.
func TestNewVectorKeepsItemSearchable(t *testing.T) {
	for _, exact := range []bool{false, true} {
		t.Run(fmt.Sprintf("exact=%v", exact), func(t *testing.T) {
			db := openTestDB(t, "", &Options{NoSync: true, ExactThreshold: -1})
			c, err := db.CreateCollection("u", CollectionConfig{Fingerprint: "m", Dims: 8})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 40; i++ {
				if _, err := c.Put(ctx, Item{ID: fmt.Sprintf("n%02d", i), Vector: unitVec(8, i%7)}); err != nil {
					t.Fatal(err)
				}
			}
			photos := [][]float32{{1, 1, 1, 1, 1, 1, 1, 0.5}, {1, 1, 1, 1, 1, 1, 0.9, 0.6}}
			if _, err := c.Put(ctx, Item{ID: "target", Vector: photos[0]}); err != nil {
				t.Fatal(err)
			}
			stop := untilStopped(t, 1, func(_, i int) error {
				_, err := c.Put(ctx, Item{ID: "target", Vector: photos[(i+1)%2], Metadata: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
				return err
			})
			misses, twice := 0, 0
			for i := 0; i < 2000; i++ {
				res, err := c.Search(ctx, photos[i%2], SearchOptions{K: 3, Exact: exact})
				if err != nil {
					t.Fatal(err)
				}
				seen := 0
				for _, r := range res {
					switch r.ID {
					case "target":
						seen++
					case "":
						t.Fatalf("a search returned a slot without an id: %+v", res)
					}
				}
				if seen == 0 {
					misses++
				}
				if seen > 1 {
					twice++
				}
			}
			stop()
			if misses > 0 || twice > 0 {
				t.Errorf("of 2000 searches, %d missed an item whose vector was being replaced and %d returned it twice", misses, twice)
			}
			if n, _ := c.Count(nil); n != 41 {
				t.Errorf("count %d after the replacements, want 41", n)
			}
		})
	}
}

// TestMovedVectorsSurviveACrash: items given new vectors after the last graph snapshot are found
// by their new vectors, once, in a copy of the file taken without a clean close (Open replays
// the write log onto the older snapshot, unlinking the slots the items left).
func TestMovedVectorsSurviveACrash(t *testing.T) {
	db := openTestDB(t, "", &Options{NoSync: true, SnapshotInterval: -1, ExactThreshold: -1})
	c, err := db.CreateCollection("u", CollectionConfig{Fingerprint: "m", Dims: 16})
	if err != nil {
		t.Fatal(err)
	}
	vec := func(seed int) []float32 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		v := make([]float32, 16)
		for j := range v {
			v[j] = float32(rng.NormFloat64())
		}
		return v
	}
	for i := 0; i < 200; i++ {
		if _, err := c.Put(ctx, Item{ID: fmt.Sprintf("i%03d", i), Vector: vec(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i += 4 {
		if _, err := c.Put(ctx, Item{ID: fmt.Sprintf("i%03d", i), Vector: vec(1000 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	crashed := openTestDB(t, crashCopy(t, db), &Options{NoSync: true, SnapshotInterval: -1, ExactThreshold: -1})
	rc, err := crashed.Collection("u")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := rc.Count(nil); n != 200 {
		t.Fatalf("count %d after the crash, want 200", n)
	}
	for i := 0; i < 200; i += 4 {
		id := fmt.Sprintf("i%03d", i)
		res, err := rc.Search(ctx, vec(1000+i), SearchOptions{K: 5})
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, r := range res {
			if r.ID == id {
				seen++
			}
		}
		if len(res) == 0 || res[0].ID != id || seen != 1 {
			t.Errorf("%s by its new vector: %+v, want it first and once", id, res)
		}
	}
	if err := crashed.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// untilStopped runs fn(worker, i) for i = 0, 1, ... on n goroutines until the returned stop is
// called (stop waits for them); an error ends that goroutine and fails the test.
func untilStopped(t *testing.T, n int, fn func(worker, i int) error) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if err := fn(w, i); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	return func() {
		close(done)
		wg.Wait()
	}
}
