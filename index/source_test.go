package index

import (
	"bytes"
	"errors"
	"testing"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// TestSourceRendition: an item's source rendition is stored beside it, read by Get and Source,
// kept by Update, through the trash and across a reopen, and removed with the item or by a write
// without one.
func TestSourceRendition(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir, &Options{NoSync: true})
	c, err := db.CreateCollection("s", CollectionConfig{Fingerprint: "m", Dims: 8})
	if err != nil {
		t.Fatal(err)
	}
	items := mkItems(synth.Clustered(4, 8, 2, 1.0, 3), "it", nil)
	src := func(i int) []byte { return bytes.Repeat([]byte{0xff, 0xd8, byte(i)}, 1000) }
	for i := range items {
		items[i].Thumbnail = []byte{0xff, 0xd8, byte(i)}
		items[i].ContentHash = "h"
		if i < 3 {
			items[i].Source = src(i)
		}
	}
	upsertAll(t, c, items, 10)
	check := func(stage string, id string, want []byte) {
		t.Helper()
		it, err := c.Get(id)
		if err != nil {
			t.Fatalf("%s: Get(%s): %v", stage, id, err)
		}
		got, err := c.Source(id)
		if err != nil || !bytes.Equal(got, want) || !bytes.Equal(it.Source, want) {
			t.Errorf("%s: source of %s: Source %d bytes (%v), Get %d bytes, want %d", stage, id, len(got), err, len(it.Source), len(want))
		}
	}
	check("stored", items[0].ID, src(0))
	check("stored without one", items[3].ID, nil)

	// Update (metadata edits, tags, merges) keeps it.
	if _, err := c.Update(ctx, items[0].ID, func(it *Item) error { it.Metadata = []byte(`{"tag":"x"}`); return nil }); err != nil {
		t.Fatal(err)
	}
	check("after update", items[0].ID, src(0))

	// The same content written again with its source is unchanged; without it, the source goes.
	same := items[1]
	if ws, err := c.Put(ctx, same); err != nil || ws[0].Outcome != Unchanged {
		t.Fatalf("same item again: %v %v", ws, err)
	}
	bare := items[1]
	bare.Source = nil
	if ws, err := c.Put(ctx, bare); err != nil || ws[0].Outcome != Replaced {
		t.Fatalf("same item without its source: %v %v, want Replaced", ws, err)
	}
	check("written without one", items[1].ID, nil)

	// Trash and restore bring it back; delete removes it.
	if _, err := c.Trash(ctx, items[2].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Source(items[2].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("source of a trashed item: %v, want ErrNotFound", err)
	}
	if _, err := c.RestoreFromTrash(ctx, items[2].ID); err != nil {
		t.Fatal(err)
	}
	check("restored", items[2].ID, src(2))
	if _, err := c.Delete(ctx, items[2].ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Upsert(ctx, Item{ID: items[2].ID, Vector: items[2].Vector}); err != nil {
		t.Fatal(err)
	}
	check("deleted and added again without one", items[2].ID, nil)

	// Too large: refused before anything is written.
	big := items[3]
	big.Source = make([]byte, MaxSourceLen+1)
	if err := c.Upsert(ctx, big); !errors.Is(err, ErrInvalidItem) {
		t.Errorf("oversized source: %v, want ErrInvalidItem", err)
	}

	db.Close()
	db = openTestDB(t, dir, &Options{NoSync: true})
	c, _ = db.Collection("s")
	check("reopened", items[0].ID, src(0))
}
