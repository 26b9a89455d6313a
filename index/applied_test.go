package index

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// A change and its log position commit together: after every kind of applied write (and a
// reopen) the position is the last one given, a position at or below it is refused with nothing
// written, and refusals of the change itself leave the position for MarkApplied.
func TestAppliedPositions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openTestDB(t, dir, nil)
	c, err := db.CreateCollection("shard", CollectionConfig{Fingerprint: "fp", Dims: 8})
	if err != nil {
		t.Fatal(err)
	}
	const key = "LK_MUT"
	steps := []struct {
		name    string
		seq     uint64
		do      func(seq uint64) error
		wantErr error
		wantSeq uint64
	}{
		{"put", 3, func(s uint64) error {
			_, err := c.PutApplied(ctx, key, s, Item{ID: "a", Vector: unitVec(8, 1)}, Item{ID: "b", Vector: unitVec(8, 2)})
			return err
		}, nil, 3},
		{"same position again", 3, func(s uint64) error {
			_, err := c.PutApplied(ctx, key, s, Item{ID: "c", Vector: unitVec(8, 3)})
			return err
		}, ErrStaleApplied, 3},
		{"update", 7, func(s uint64) error {
			_, err := c.UpdateApplied(ctx, key, s, "a", func(it *Item) error { it.Metadata = json.RawMessage(`{"k":1}`); return nil })
			return err
		}, nil, 7},
		{"update refused by fn", 8, func(s uint64) error {
			_, err := c.UpdateApplied(ctx, key, s, "a", func(*Item) error { return ErrVersionConflict })
			return err
		}, ErrVersionConflict, 7},
		{"update of an absent item", 8, func(s uint64) error {
			_, err := c.UpdateApplied(ctx, key, s, "zz", func(*Item) error { return nil })
			return err
		}, ErrNotFound, 7},
		{"mark the refused entry", 8, func(s uint64) error { return c.MarkApplied(ctx, key, s) }, nil, 8},
		{"put with a stale precondition", 9, func(s uint64) error {
			_, err := c.PutApplied(ctx, key, s, Item{ID: "b", Vector: unitVec(8, 4), IfVersion: 99})
			return err
		}, ErrVersionConflict, 8},
		{"delete", 10, func(s uint64) error { _, err := c.DeleteApplied(ctx, key, s, "b", "b", "nope"); return err }, nil, 10},
		{"delete of absent ids still advances", 12, func(s uint64) error { _, err := c.DeleteApplied(ctx, key, s, "nope"); return err }, nil, 12},
		{"stale delete", 11, func(s uint64) error { _, err := c.DeleteApplied(ctx, key, s, "a"); return err }, ErrStaleApplied, 12},
	}
	for _, st := range steps {
		err := st.do(st.seq)
		if (st.wantErr == nil) != (err == nil) || (st.wantErr != nil && !errors.Is(err, st.wantErr)) {
			t.Fatalf("%s: err = %v, want %v", st.name, err, st.wantErr)
		}
		if got, _ := c.AppliedSeq(key); got != st.wantSeq {
			t.Fatalf("%s: applied = %d, want %d", st.name, got, st.wantSeq)
		}
	}
	if _, err := c.Get("c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused put wrote c: %v", err)
	}
	if _, err := c.Get("b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("b survived its delete: %v", err)
	}
	if it, err := c.Get("a"); err != nil || string(it.Metadata) != `{"k":1}` {
		t.Fatalf("a = %+v, %v", it, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, dir, nil)
	c, err = db.Collection("shard")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.AppliedSeq(key); got != 12 {
		t.Fatalf("after reopen applied = %d, want 12", got)
	}
	if got, _ := c.AppliedSeq("other-log"); got != 0 {
		t.Fatalf("another key's position = %d, want 0", got)
	}
}
