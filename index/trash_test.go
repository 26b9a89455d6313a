package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// TestTrashRoundTrip trashes items, reopens the data directory, restores one and checks that it
// comes back whole (vector, metadata bytes, thumbnail, content hash) and searchable, while the
// trash refuses what it cannot do and purges by age.
func TestTrashRoundTrip(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir, &Options{NoSync: true})
	c, err := db.CreateCollection("t", CollectionConfig{Fingerprint: "m", Dims: 8})
	if err != nil {
		t.Fatal(err)
	}
	items := mkItems(synth.Clustered(30, 8, 3, 1.0, 7), "it", func(i int) string { return `{"ean":9007199254740993,"n":` + string(rune('0'+i%10)) + `}` })
	for i := range items {
		items[i].Thumbnail = []byte{0xff, 0xd8, byte(i)}
	}
	upsertAll(t, c, items, 10)
	want := items[3]
	before, err := c.Get(want.ID)
	if err != nil {
		t.Fatal(err)
	}

	moved, err := c.Trash(ctx, want.ID, items[4].ID, "no-such-item")
	if err != nil || len(moved) != 2 {
		t.Fatalf("Trash = %v, %v; want the two existing ids", moved, err)
	}
	if _, err := c.Get(want.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a trashed item is still readable: %v", err)
	}
	if res, _ := c.Search(ctx, want.Vector, SearchOptions{K: 3}); len(res) > 0 && res[0].ID == want.ID {
		t.Fatalf("a trashed item is still found: %v", res)
	}
	if c.Info().Count != 28 {
		t.Fatalf("count %d after trashing 2 of 30", c.Info().Count)
	}

	// The trash survives a restart (the graph comes back from snapshot + log without them).
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(dir, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	c, err = db2.Collection("t")
	if err != nil {
		t.Fatal(err)
	}
	list, next, err := c.ListTrash("", 1)
	if err != nil || len(list) != 1 || list[0].ID != want.ID || next != want.ID || !list[0].HasThumbnail {
		t.Fatalf("ListTrash page 1 = %+v %q %v", list, next, err)
	}
	if !bytes.Equal(list[0].Metadata, before.Metadata) || time.Since(list[0].DeletedAt) > time.Minute {
		t.Fatalf("trash entry %+v", list[0])
	}

	w, err := c.RestoreFromTrash(ctx, want.ID)
	if err != nil || w.Outcome != Created || w.Version <= before.Version {
		t.Fatalf("restore: %+v, %v (version before %d)", w, err, before.Version)
	}
	got, err := c.Get(want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Metadata, before.Metadata) || !bytes.Equal(got.Thumbnail, before.Thumbnail) || got.ContentHash != before.ContentHash {
		t.Fatalf("restored %+v, want %+v", got, before)
	}
	for i := range got.Vector {
		if math.Abs(float64(got.Vector[i]-before.Vector[i])) > 1e-6 {
			t.Fatalf("restored vector differs at %d: %v vs %v", i, got.Vector[i], before.Vector[i])
		}
	}
	if res, err := c.Search(ctx, before.Vector, SearchOptions{K: 1}); err != nil || len(res) == 0 || res[0].ID != want.ID {
		t.Fatalf("restored item not found by its vector: %v %v", res, err)
	}
	if list, _, _ := c.ListTrash("", 10); len(list) != 1 || list[0].ID != items[4].ID {
		t.Fatalf("trash after the restore: %+v", list)
	}

	for _, tc := range []struct {
		name, id string
		want     error
	}{
		{"twice", want.ID, ErrExists}, // it is live again
		{"never trashed", items[5].ID, ErrExists},
		{"unknown", "nope", ErrNotFound},
	} {
		if _, err := c.RestoreFromTrash(ctx, tc.id); !errors.Is(err, tc.want) {
			t.Errorf("restore %s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// An id re-added after trashing is never overwritten by a restore.
	if err := c.Upsert(ctx, Item{ID: items[4].ID, Vector: unitVec(8, 1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RestoreFromTrash(ctx, items[4].ID); !errors.Is(err, ErrExists) {
		t.Fatalf("restore over a re-added item: %v", err)
	}

	if n, err := c.PurgeTrash(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("purge of recent entries: %d, %v", n, err)
	}
	if n, err := c.PurgeTrash(ctx, time.Now().Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if list, _, _ := c.ListTrash("", 10); len(list) != 0 {
		t.Fatalf("trash after purge: %+v", list)
	}
	if _, err := c.RestoreFromTrash(ctx, items[4].ID); !errors.Is(err, ErrExists) {
		t.Fatalf("restore after purge: %v", err)
	}
}

// FuzzDecodeTrash: a damaged trash entry is an error, never a panic or an out-of-range slice.
func FuzzDecodeTrash(f *testing.F) {
	rec := appendRecord(nil, &record{slot: 1, version: 2, meta: []byte(`{"a":1}`), vec: []float32{1, 0}})
	f.Add(appendTrash(nil, time.Unix(5, 0), rec, []byte("thumb"), []byte("source")))
	f.Add([]byte{trashVersion, 0x80})
	// version 1, before source renditions: 0x01 | at | len+record | thumbnail
	v1 := binary.AppendUvarint(binary.AppendVarint([]byte{1}, 5e9), uint64(len(rec)))
	f.Add(append(append(v1, rec...), "thumb"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, raw, thumb, source, err := decodeTrash(b)
		if err == nil && len(raw)+len(thumb)+len(source) > len(b) {
			t.Fatalf("slices longer than the input")
		}
	})
}

// TestDecodeTrashVersions: entries written before source renditions (version 1) still decode.
func TestDecodeTrashVersions(t *testing.T) {
	rec := appendRecord(nil, &record{slot: 1, version: 2, vec: []float32{1, 0}})
	v1 := binary.AppendUvarint(binary.AppendVarint([]byte{1}, 5e9), uint64(len(rec)))
	v1 = append(append(v1, rec...), "thumb"...)
	for _, tc := range []struct {
		name          string
		entry         []byte
		thumb, source string
	}{
		{"version 1", v1, "thumb", ""},
		{"version 2", appendTrash(nil, time.Unix(5, 0), rec, []byte("thumb"), []byte("src")), "thumb", "src"},
		{"version 2 without source", appendTrash(nil, time.Unix(5, 0), rec, []byte("thumb"), nil), "thumb", ""},
	} {
		at, raw, thumb, source, err := decodeTrash(tc.entry)
		if err != nil || !at.Equal(time.Unix(5, 0)) || !bytes.Equal(raw, rec) || string(thumb) != tc.thumb || string(source) != tc.source {
			t.Errorf("%s: %v %v %q %q %v", tc.name, at, bytes.Equal(raw, rec), thumb, source, err)
		}
	}
}
