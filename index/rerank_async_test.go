package index

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lookalike/lookalike/internal/bench/synth"
	"github.com/lookalike/lookalike/rerank"
)

// TestRerankLoadsAfterOpen: a collection at Options.RerankLoadAsyncAt or more opens before its
// re-ranking state is loaded. Meanwhile it answers searches (k-reciprocal re-ranking skipped and
// said so, query expansion kept) and takes writes, which the loader replays once its rows are
// built; once ready, the state lists exactly the linked items and its rows are those of its lists.
// Snapshots wait for the loader; Close while it loads waits for it.
func TestRerankLoadsAfterOpen(t *testing.T) {
	dir := t.TempDir()
	vecs := synth.Clustered(1500, 24, 6, 1, 9)
	o := &Options{NoSync: true, SnapshotInterval: -1, ExactThreshold: -1, EfConstruction: 32, RerankLoadAsyncAt: -1}
	db, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := db.CreateCollection("a", CollectionConfig{Fingerprint: "f", Dims: 24})
	upsertAll(t, c, mkItems(vecs[:1400], "i", nil), 200)
	db.Close()

	search := func(c *Collection, m rerank.Mode) []string {
		t.Helper()
		res, err := c.Search(ctx, vecs[1450], SearchOptions{K: 10, Rerank: m})
		if err != nil || len(res) != 10 {
			t.Fatalf("search %v: %v, %d results", m, err, len(res))
		}
		var ids []string
		for _, r := range res {
			ids = append(ids, r.ID)
		}
		return ids
	}
	// The reference: loaded at Open.
	db, _ = Open(dir, o)
	c, _ = db.Collection("a")
	if !c.Info().RerankReady {
		t.Fatal("state not ready after a synchronous load")
	}
	want := map[rerank.Mode][]string{}
	for _, m := range []rerank.Mode{rerank.ModeNone, rerank.ModeQE, rerank.ModeKR, rerank.ModeQEKR} {
		want[m] = search(c, m)
	}
	db.Close()

	release := make(chan struct{})
	rerankLoadHook = func() { <-release }
	t.Cleanup(func() { rerankLoadHook = nil })
	async := *o
	async.RerankLoadAsyncAt = 1000
	db, err = Open(dir, &async)
	if err != nil {
		t.Fatal(err)
	}
	c, _ = db.Collection("a")
	if c.Info().RerankReady {
		t.Fatal("state ready while its loader is held")
	}
	for m, got := range map[rerank.Mode]rerank.Mode{rerank.ModeKR: rerank.ModeNone, rerank.ModeQEKR: rerank.ModeQE, rerank.ModeQE: rerank.ModeQE} {
		if a := c.RerankApplied(m); a != got {
			t.Errorf("RerankApplied(%v) = %v while loading, want %v", m, a, got)
		}
		if ids := search(c, m); !slices.Equal(ids, want[got]) {
			t.Errorf("%v while loading: %v, want the %v answer %v", m, ids, got, want[got])
		}
	}
	// Writes go through while the loader is held: a new item, a delete, a move (new vector),
	// a metadata change, and a batch.
	writes := []func() error{
		func() error { return c.Upsert(ctx, Item{ID: "late", Vector: vecs[1499]}) },
		func() error {
			if n, err := c.Delete(ctx, "i00005"); err != nil || n != 1 {
				return fmt.Errorf("deleted %d: %v", n, err)
			}
			return nil
		},
		func() error { return c.Upsert(ctx, Item{ID: "i00007", Vector: vecs[1498]}) },
		func() error { return c.Upsert(ctx, Item{ID: "i00009", Vector: vecs[9], Metadata: []byte(`{"k":1}`)}) },
		func() error { return c.Upsert(ctx, mkItems(vecs[1400:1440], "b", nil)...) },
	}
	for i, w := range writes {
		wrote := make(chan error, 1)
		go func() { wrote <- w() }()
		select {
		case err := <-wrote:
			if err != nil {
				t.Fatalf("write %d while the state loads: %v", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("write %d held back by the re-ranking loader", i)
		}
	}
	snapBefore := c.snapSeq
	if err := c.snapshot(); err != nil || c.snapSeq != snapBefore {
		t.Fatalf("snapshot while loading: %v, snapSeq %d -> %d (want it skipped)", err, snapBefore, c.snapSeq)
	}
	// Searches run beside the loader (the race detector watches them).
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !c.Info().RerankReady {
			search(c, rerank.ModeQEKR)
		}
	}()
	// And a write beside it, which may land during its replay or after it.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := c.Upsert(ctx, Item{ID: "during", Vector: vecs[1497]}); err != nil {
			t.Errorf("write beside the loader: %v", err)
		}
	}()
	close(release)
	wg.Wait()
	<-c.rrDone
	if want := "lists from the snapshot + "; !strings.HasPrefix(c.rrFrom, want) || !strings.HasSuffix(c.rrFrom, "written while loading") {
		t.Errorf("re-ranking from %q, want %q... written while loading", c.rrFrom, want)
	}
	if a := c.RerankApplied(rerank.ModeQEKR); a != rerank.ModeQEKR {
		t.Errorf("RerankApplied after the load: %v", a)
	}
	// The state holds exactly the linked items, and its rows are those of its lists.
	c.mu.RLock()
	for s := range c.g.levels {
		if linked := c.g.levels[s] >= 0; c.rr.Has(uint32(s)) != linked {
			t.Errorf("slot %d (%q): listed %v, linked %v", s, c.ids[s], c.rr.Has(uint32(s)), linked)
		}
	}
	if err := c.rr.Verify(c.rrDist); err != nil {
		t.Errorf("state after the load and the replay: %v", err)
	}
	c.mu.RUnlock()
	for _, id := range []string{"late", "i00007", "b00000", "b00039", "during"} {
		if _, ok := c.Has(id); !ok {
			t.Errorf("%s missing after the load", id)
		}
	}
	if _, ok := c.Has("i00005"); ok {
		t.Error("i00005 still there after its delete")
	}
	// Similar on a write made during the load re-ranks: its row exists.
	if res, err := c.Similar(ctx, "late", SearchOptions{K: 5, Rerank: rerank.ModeKR}); err != nil || len(res) != 5 {
		t.Errorf("similar to an item written while loading: %v, %d results", err, len(res))
	}
	db.Close()

	// Close while the state loads waits for the loader.
	release = make(chan struct{})
	db, err = Open(dir, &async)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	time.Sleep(20 * time.Millisecond)
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}
