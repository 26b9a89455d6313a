package index

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func unitVec(dims, hot int) []float32 {
	v := make([]float32, dims)
	v[hot%dims] = 1
	v[(hot+1)%dims] = 0.5
	return v
}

func TestVersionsAndOutcomes(t *testing.T) {
	db := openTestDB(t, "", nil)
	c, err := db.CreateCollection("v", CollectionConfig{Fingerprint: "m", Dims: 4})
	if err != nil {
		t.Fatal(err)
	}
	put := func(it Item) Written {
		t.Helper()
		w, err := c.Put(ctx, it)
		if err != nil {
			t.Fatalf("Put %s: %v", it.ID, err)
		}
		return w[0]
	}
	a := Item{ID: "a", Vector: unitVec(4, 0), ContentHash: "h1", Metadata: json.RawMessage(`{"x":1}`), Thumbnail: []byte("t")}
	w1 := put(a)
	if w1.Outcome != Created || w1.Version == 0 {
		t.Fatalf("first write: %+v", w1)
	}
	if w := put(a); w.Outcome != Unchanged || w.Version != w1.Version {
		t.Fatalf("same content: %+v, want unchanged at %d", w, w1.Version)
	}
	b := put(Item{ID: "b", Vector: unitVec(4, 1)})
	a.Metadata = json.RawMessage(`{"x":2}`)
	w2 := put(a)
	if w2.Outcome != Replaced || w2.Version <= b.Version {
		t.Fatalf("replacement: %+v (b at %d)", w2, b.Version)
	}
	got, err := c.Get("a")
	if err != nil || got.Version != w2.Version {
		t.Fatalf("Get version = %d, %v; want %d", got.Version, err, w2.Version)
	}
	list, _, err := c.List("", 10)
	if err != nil || len(list) != 2 || list[0].Version != w2.Version || list[1].Version != b.Version {
		t.Fatalf("List versions: %+v, %v", list, err)
	}

	tests := []struct {
		name      string
		ifVersion uint64
		id        string
		wantErr   error
	}{
		{"stale version", w1.Version, "a", ErrVersionConflict},
		{"missing item", 5, "gone", ErrVersionConflict},
		{"current version", w2.Version, "a", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Put(ctx, Item{ID: tc.id, Vector: unitVec(4, 2), IfVersion: tc.ifVersion})
			if !errors.Is(err, tc.wantErr) && !(tc.wantErr == nil && err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	if _, err := c.Get("gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed conditional write created the item: %v", err)
	}
	// A failed precondition in a batch writes nothing of it.
	_, err = c.Put(ctx, Item{ID: "c", Vector: unitVec(4, 3)}, Item{ID: "b", Vector: unitVec(4, 1), IfVersion: 1})
	if !errors.Is(err, ErrVersionConflict) {
		t.Fatalf("batch with a stale item: %v", err)
	}
	if _, err := c.Get("c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("batch partly written: %v", err)
	}
}

// Concurrent read-modify-write through Update loses nothing: every merge's key is present and a
// concurrent replacement of the photo (vector, thumbnail) survives, with the merges applied on top.
func TestUpdateConcurrentMergesAndReplacement(t *testing.T) {
	db := openTestDB(t, "", nil)
	c, err := db.CreateCollection("m", CollectionConfig{Fingerprint: "m", Dims: 4})
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 10; round++ {
		id := fmt.Sprintf("item%d", round)
		if err := c.Upsert(ctx, Item{ID: id, Vector: unitVec(4, 0), Thumbnail: []byte("old"), Metadata: json.RawMessage(`{"v":0}`)}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for m := 0; m < 8; m++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.Update(ctx, id, func(it *Item) error {
					var meta map[string]json.RawMessage
					if err := json.Unmarshal(it.Metadata, &meta); err != nil {
						return err
					}
					meta[fmt.Sprintf("k%d", m)] = json.RawMessage(`true`)
					it.Metadata, err = json.Marshal(meta)
					return err
				})
				if err != nil {
					t.Errorf("merge %d: %v", m, err)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Update(ctx, id, func(it *Item) error {
				var meta map[string]json.RawMessage
				if err := json.Unmarshal(it.Metadata, &meta); err != nil {
					return err
				}
				meta["v"] = json.RawMessage(`1`)
				it.Metadata, _ = json.Marshal(meta)
				it.Vector, it.Thumbnail = unitVec(4, 2), []byte("new")
				return nil
			})
			if err != nil {
				t.Errorf("replacement: %v", err)
			}
		}()
		wg.Wait()
		got, err := c.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		var meta map[string]json.RawMessage
		if err := json.Unmarshal(got.Metadata, &meta); err != nil {
			t.Fatal(err)
		}
		for m := 0; m < 8; m++ {
			if _, ok := meta[fmt.Sprintf("k%d", m)]; !ok {
				t.Errorf("round %d: merge key k%d lost: %s", round, m, got.Metadata)
			}
		}
		if string(meta["v"]) != "1" || string(got.Thumbnail) != "new" || got.Vector[2] == 0 {
			t.Errorf("round %d: replacement lost: meta %s thumb %q", round, got.Metadata, got.Thumbnail)
		}
	}
}

func TestUpdateErrors(t *testing.T) {
	db := openTestDB(t, "", nil)
	c, err := db.CreateCollection("e", CollectionConfig{Fingerprint: "m", Dims: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Upsert(ctx, Item{ID: "a", Vector: unitVec(4, 0), Metadata: json.RawMessage(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	tests := []struct {
		name string
		id   string
		fn   func(*Item) error
		want error
	}{
		{"missing", "nope", func(*Item) error { return nil }, ErrNotFound},
		{"fn fails", "a", func(it *Item) error { it.Metadata = json.RawMessage(`{"x":9}`); return stop }, stop},
		{"id change", "a", func(it *Item) error { it.ID = "b"; return nil }, ErrInvalidItem},
		{"bad metadata", "a", func(it *Item) error { it.Metadata = json.RawMessage(`[1]`); return nil }, ErrInvalidItem},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Update(ctx, tc.id, tc.fn); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got, _ := c.Get("a"); string(got.Metadata) != `{"x":1}` {
				t.Fatalf("a failed update wrote: %s", got.Metadata)
			}
		})
	}
}
