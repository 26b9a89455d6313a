//go:build linux

package index

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/lookalike/lookalike/internal/bench/synth"
	"github.com/lookalike/lookalike/rerank"
)

// BenchmarkRerank measures one search (k 10) in each re-ranking mode, by a query vector that is
// not stored (image search) and by a stored item (similar), on LOOKALIKE_BENCH_N (default 10000)
// clustered 1280-d items, single caller, in CPU ms per request and as a ratio to the plain
// search of the same queries in the same run (x-none/MODE); the memory the re-ranking state
// holds per item; and what keeping the lists costs a write (add and delete). The collection is built through Upsert (not timed; reported) and kept in
// LOOKALIKE_BENCH_DIR when set, so that a second run at 100k reuses it:
//
//	LOOKALIKE_BENCH_N=100000 LOOKALIKE_BENCH_DIR=/tmp/rr100k go test -run '^$' -bench Rerank -benchtime 2000x -timeout 60m ./index/
func BenchmarkRerank(b *testing.B) {
	n := envInt("LOOKALIKE_BENCH_N", 10000)
	const dim = 1280
	dir := os.Getenv("LOOKALIKE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	opts := &Options{NoSync: true, SnapshotInterval: -1}
	t0 := time.Now()
	db, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	openS := time.Since(t0).Seconds()
	defer db.Close()
	clusters := max(1, n/500)
	c, err := db.OpenCollection("bench", CollectionConfig{Fingerprint: "synthetic", Dims: dim})
	if err != nil {
		b.Fatal(err)
	}
	if have := c.Info().Count; have < n {
		start := time.Now()
		const chunk = 2000
		for off := have; off < n; off += chunk {
			vecs := synth.Clustered(min(chunk, n-off), dim, clusters, 1, int64(off))
			items := make([]Item, len(vecs))
			for i, v := range vecs {
				items[i] = Item{ID: fmt.Sprintf("sku-%07d", off+i), Vector: v}
			}
			if err := c.Upsert(ctx, items...); err != nil {
				b.Fatal(err)
			}
			if done := off + len(vecs); done%20000 == 0 {
				fmt.Printf("  %d items after %.0fs\n", done, time.Since(start).Seconds())
			}
		}
		fmt.Printf("built %d items through Upsert in %.1fs (%.2f ms per item, lists kept)\n", n, time.Since(start).Seconds(), time.Since(start).Seconds()*1000/float64(n))
	} else {
		if c.rrDone != nil {
			// The rows load in the background after Open: searches timed beside the loader would
			// share the cores with it (and those before it ends are not re-ranked).
			<-c.rrDone
		}
		fmt.Printf("opened %d items in %.1fs (re-ranking state ready after %.1fs): graph from %s, re-ranking %s\n",
			have, openS, time.Since(t0).Seconds(), c.loadedFrom, c.rrFrom)
	}
	c.mu.RLock()
	fp := c.rr.Footprint()
	c.mu.RUnlock()
	fmt.Printf("re-ranking state: %.0f MB, %.0f bytes per item (the %d-neighbour list itself %d); rows of %.1f (V0) and %.1f (V) entries\n",
		float64(fp.Bytes)/1e6, float64(fp.Bytes)/float64(fp.Items), rerank.DefaultK1, 8*rerank.DefaultK1, fp.MeanRow0, fp.MeanRow)
	queries := synth.Clustered(256, dim, clusters, 1, 1_000_003) // same centres, other draws
	// Each iteration runs every mode once, timed in the CPU time of the calling thread (a search
	// runs on its caller), so that a busy machine's waiting does not count.
	timeModes := func(b *testing.B, run func(i int, mode rerank.Mode) error) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		spent := make([]time.Duration, len(rerank.Modes))
		for i := 0; i < b.N; i++ {
			for j := range rerank.Modes { // rotated: the first search of a query warms the cache
				m := (i + j) % len(rerank.Modes)
				mode := rerank.Modes[m]
				t0 := threadCPU()
				if err := run(i, mode); err != nil {
					b.Fatal(err)
				}
				spent[m] += threadCPU() - t0
			}
		}
		for m, mode := range rerank.Modes {
			b.ReportMetric(float64(spent[m].Microseconds())/1000/float64(b.N), "ms/"+mode.String())
			if m > 0 && spent[0] > 0 { // the plain search of the same queries, same run
				b.ReportMetric(float64(spent[m])/float64(spent[0]), "x-none/"+mode.String())
			}
		}
	}
	b.Run("search", func(b *testing.B) {
		timeModes(b, func(i int, mode rerank.Mode) error {
			_, err := c.Search(ctx, queries[i%len(queries)], SearchOptions{K: 10, Rerank: mode})
			return err
		})
	})
	b.Run("similar", func(b *testing.B) {
		timeModes(b, func(i int, mode rerank.Mode) error {
			_, err := c.Similar(ctx, fmt.Sprintf("sku-%07d", (i*7919)%n), SearchOptions{K: 10, Rerank: mode})
			return err
		})
	})
	// What Open spends on the re-ranking state: the rows from the lists (always), and the lists from
	// the graph (when their snapshot is missing or unusable), on all cores.
	b.Run("load", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			c.mu.Lock()
			t0 := time.Now()
			c.rr.Rebuild(c.rrDist, runtime.GOMAXPROCS(0))
			rows := time.Since(t0)
			live := make([]bool, len(c.ids))
			for s, id := range c.ids {
				live[s] = id != ""
			}
			// The same rows without the row scale (rerank.Params.RowScale 0): what sampling costs.
			p := c.rr.Params()
			p.RowScale = 0
			bare, _ := rerank.New(p)
			for s, ok := range live {
				if ok {
					bare.SetList(uint32(s), c.rr.List(uint32(s)))
				}
			}
			t0 = time.Now()
			bare.Rebuild(c.rrDist, runtime.GOMAXPROCS(0))
			rowsBare := time.Since(t0)
			t0 = time.Now()
			c.rrListsFromGraph(rerank.NewDefault(), live, func(f func()) { f() })
			lists := time.Since(t0)
			c.mu.Unlock()
			// The same rows as the loader after Open computes them, beside writes: each distance
			// under its own read lock.
			t0 = time.Now()
			c.rr.Rebuild(c.rrDistRLocked, runtime.GOMAXPROCS(0))
			rowsLocked := time.Since(t0)
			b.ReportMetric(rowsLocked.Seconds(), "s/rows-read-locked")
			b.ReportMetric(rows.Seconds(), "s/rows")
			b.ReportMetric(rowsBare.Seconds(), "s/rows-unscaled")
			b.ReportMetric(lists.Seconds(), "s/lists-from-graph")
		}
	})
	// A write with the lists kept against one without (alternating; each added item is deleted
	// again, so the collection stays as built).
	b.Run("write", func(b *testing.B) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var with, without time.Duration
		for i := 0; i < b.N; i++ {
			for _, skip := range []bool{i%2 == 0, i%2 == 1} {
				id := fmt.Sprintf("new-%d", i)
				c.rrSkip = skip
				t0 := threadCPU()
				if err := c.Upsert(ctx, Item{ID: id, Vector: queries[i%len(queries)]}); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Delete(ctx, id); err != nil {
					b.Fatal(err)
				}
				if skip {
					without += threadCPU() - t0
				} else {
					with += threadCPU() - t0
				}
			}
		}
		c.rrSkip = false
		b.ReportMetric(float64(with.Microseconds())/1000/float64(b.N), "ms/add+delete")
		b.ReportMetric(float64(without.Microseconds())/1000/float64(b.N), "ms/add+delete-without-lists")
	})
}

// threadCPU is the CPU time of the calling OS thread (getrusage RUSAGE_THREAD).
func threadCPU() time.Duration {
	const rusageThread = 1
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
