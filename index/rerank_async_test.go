package index

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lookalike/lookalike/internal/bench/synth"
	"github.com/lookalike/lookalike/rerank"
)

// TestRerankLoadsAfterOpen: a collection at Options.RerankLoadAsyncAt or more opens before its
// re-ranking state is loaded. Meanwhile it answers searches (k-reciprocal re-ranking skipped and
// said so, query expansion kept) and holds writes back; once ready, k-reciprocal answers are
// those of a state loaded at Open, and writes go through. Close while it loads waits for it.
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
	wrote := make(chan error, 1)
	go func() { wrote <- c.Upsert(ctx, Item{ID: "late", Vector: vecs[1499]}) }()
	select {
	case err := <-wrote:
		t.Fatalf("a write went through while the state loads: %v", err)
	case <-time.After(50 * time.Millisecond):
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
	close(release)
	if err := <-wrote; err != nil {
		t.Fatalf("write after the load: %v", err)
	}
	wg.Wait()
	if c.rrFrom != "lists from the snapshot" {
		t.Errorf("re-ranking from %q", c.rrFrom)
	}
	if a := c.RerankApplied(rerank.ModeQEKR); a != rerank.ModeQEKR {
		t.Errorf("RerankApplied after the load: %v", a)
	}
	if _, ok := c.Has("late"); !ok {
		t.Error("the held write is missing")
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
