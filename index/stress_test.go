package index

import (
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// TestStressConcurrent runs searches, Similar, Get, List and snapshots
// concurrently with upserts, updates and deletes. Run it with -race
// (the Makefile does: go test -race -run Stress ./index/).
func TestStressConcurrent(t *testing.T) {
	const dim = 32
	db := openTestDB(t, "", &Options{NoSync: true, ExactThreshold: -1, SnapshotInterval: -1, EfConstruction: 64})
	c, err := db.CreateCollection("s", CollectionConfig{Fingerprint: "f", Dims: dim})
	if err != nil {
		t.Fatal(err)
	}
	vecs := synth.Clustered(3000, dim, 10, 1, 9)
	upsertAll(t, c, mkItems(vecs[:1000], "a", func(i int) string { return fmt.Sprintf(`{"g":"g%d"}`, i%4) }), 200)
	f, _ := ParseFilter(`g = "g1"`)

	var wg sync.WaitGroup
	errc := make(chan error, 100)
	report := func(err error) {
		if err != nil && !errors.Is(err, ErrNotFound) {
			select {
			case errc <- err:
			default:
			}
		}
	}
	for w := 0; w < 2; w++ { // writers: new ids and re-embeds
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			for i := 0; i < 150; i++ {
				id := fmt.Sprintf("w%d-%d", w, rng.Intn(200))
				report(c.Upsert(ctx, Item{ID: id, Vector: vecs[1000+rng.Intn(2000)], Metadata: []byte(`{"g":"g1"}`)}))
			}
		}(w)
	}
	wg.Add(1)
	go func() { // deleter
		defer wg.Done()
		rng := rand.New(rand.NewSource(7))
		for i := 0; i < 100; i++ {
			_, err := c.Delete(ctx, fmt.Sprintf("a%05d", rng.Intn(1000)), fmt.Sprintf("w0-%d", rng.Intn(200)))
			report(err)
		}
	}()
	wg.Add(1)
	go func() { // snapshotter
		defer wg.Done()
		for i := 0; i < 5; i++ {
			report(db.Snapshot())
		}
	}()
	var rwg sync.WaitGroup
	for r := 0; r < 4; r++ {
		rwg.Add(1)
		go func(r int) {
			defer rwg.Done()
			rng := rand.New(rand.NewSource(int64(100 + r)))
			for i := 0; i < 300; i++ {
				q := vecs[rng.Intn(len(vecs))]
				switch i % 6 {
				case 0, 1:
					res, err := c.Search(ctx, q, SearchOptions{K: 10})
					report(err)
					if err == nil && len(res) == 0 {
						report(fmt.Errorf("empty result"))
					}
				case 2:
					res, err := c.Search(ctx, q, SearchOptions{K: 5, Filter: f})
					report(err)
					for _, x := range res {
						if !f.Match(x.Metadata) {
							report(fmt.Errorf("filter violated by %s", x.ID))
						}
					}
				case 3:
					_, err := c.Similar(ctx, fmt.Sprintf("a%05d", rng.Intn(1000)), SearchOptions{K: 5})
					report(err)
				case 4:
					_, err := c.Get(fmt.Sprintf("w1-%d", rng.Intn(200)))
					report(err)
					c.Has("a00001")
				case 5:
					_, _, err := c.List("", 20)
					report(err)
					c.Info()
				}
			}
		}(r)
	}
	wg.Wait()
	rwg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	// Memory and disk agree, and every live node is reachable.
	c.mu.RLock()
	defer c.mu.RUnlock()
	if r := reachable(c.g); r != c.g.count {
		t.Errorf("%d of %d reachable", r, c.g.count)
	}
	var diskN int
	c.mu.RUnlock()
	items, _, _ := c.List("", 10000)
	c.mu.RLock()
	diskN = len(items)
	if diskN != c.g.count || len(c.byID) != diskN {
		t.Errorf("disk %d, graph %d, ids %d", diskN, c.g.count, len(c.byID))
	}
}
