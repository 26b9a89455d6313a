package index

import (
	"context"
	"errors"
	"testing"
)

// TestGenerationsAliasesAndChanges: a generation is frozen until its alias names it; the alias is
// durable; tracked writes (put, update, delete) are recorded in their own transaction and a record
// rewritten since it was read survives its acknowledgement.
func TestGenerationsAliasesAndChanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openTestDB(t, dir, nil)
	cfg := CollectionConfig{Fingerprint: "a", Dims: 4}
	live, err := db.CreateCollection("shop", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateCollection("shop@2", cfg); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("generation name through CreateCollection: %v", err)
	}
	shadow, err := db.CreateGeneration("shop", 2, CollectionConfig{Fingerprint: "b", Dims: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := shadow.Upsert(ctx, Item{ID: "x", Vector: unitVec(4, 0)}); !errors.Is(err, ErrFrozen) {
		t.Fatalf("client write to a shadow: %v", err)
	}
	if err := shadow.Upsert(WithReplication(ctx), Item{ID: "x", Vector: unitVec(4, 0)}); err != nil {
		t.Fatalf("replicated write to a shadow: %v", err)
	}
	if err := live.Track(true); err != nil {
		t.Fatal(err)
	}
	if err := live.Upsert(ctx, Item{ID: "a", Vector: unitVec(4, 1)}, Item{ID: "b", Vector: unitVec(4, 2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	chs, n, err := live.Changes(10)
	if err != nil || n != 2 || len(chs) != 2 || chs[0].ID != "a" || chs[1].ID != "b" {
		t.Fatalf("changes = %v (%d), %v", chs, n, err)
	}
	if _, err := live.Update(ctx, "a", func(it *Item) error { it.Metadata = []byte(`{"k":1}`); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := live.AckChanges(chs); err != nil {
		t.Fatal(err)
	}
	if chs, n, _ := live.Changes(10); n != 1 || chs[0].ID != "a" {
		t.Fatalf("after ack, a rewritten since must stay: %v", chs)
	}
	if err := db.SetAlias("shop", "shop@2"); err != nil {
		t.Fatal(err)
	}
	if !live.Frozen() || shadow.Frozen() {
		t.Fatalf("after the switch: live frozen %v, shadow frozen %v", live.Frozen(), shadow.Frozen())
	}
	if err := db.DropCollection("shop@2"); !errors.Is(err, ErrInUse) {
		t.Fatalf("dropping the alias target: %v", err)
	}
	db.Close()

	db = openTestDB(t, dir, nil)
	if got := db.Resolve("shop"); got != "shop@2" {
		t.Fatalf("alias after reopen resolves to %q", got)
	}
	if got := db.Resolve("shop@1"); got != "shop" {
		t.Fatalf("shop@1 resolves to %q", got)
	}
	old, _ := db.Collection("shop")
	if !old.Frozen() || !old.Tracking() {
		t.Fatalf("after reopen: frozen %v tracking %v", old.Frozen(), old.Tracking())
	}
	if err := db.SetAlias("shop", "shop"); err != nil {
		t.Fatal(err)
	}
	if old.Frozen() || db.Resolve("shop") != "shop" {
		t.Fatal("rollback to generation 1 did not unfreeze it")
	}
	if err := db.SetState("rebuild/shop", []byte(`{}`)); err != nil || string(db.State("rebuild/shop")) != "{}" || len(db.States("rebuild/")) != 1 {
		t.Fatalf("state: %v", err)
	}
}
