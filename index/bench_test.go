package index

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkSearch measures one HNSW search (k=10, default ef) with
// allocations, on LOOKALIKE_BENCH_N (default 20000) clustered 1280-d vectors.
func BenchmarkSearch(b *testing.B) {
	n := envInt("LOOKALIKE_BENCH_N", 20000)
	vecs := synth.Clustered(n+256, 1280, max(1, n/500), 1, 1)
	g := buildGraph(b, vecs[:n], 16, 200)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g.search(vecs[n+i%256], 10, DefaultEfSearch, nil)
	}
}

// BenchmarkLoad reports how long Open takes to make a persisted collection
// of LOOKALIKE_BENCH_N (default 100000) 1280-d items searchable from its
// snapshot (the build, through the public Upsert API, is not timed).
//
//	go test -run '^$' -bench Load -benchtime 1x -timeout 60m ./index/
func BenchmarkLoad(b *testing.B) {
	n := envInt("LOOKALIKE_BENCH_N", 100000)
	dir := b.TempDir()
	db, err := Open(dir, &Options{NoSync: true, SnapshotInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	c, _ := db.CreateCollection("load", CollectionConfig{Fingerprint: "synthetic", Dims: 1280})
	const chunk = 5000
	start := time.Now()
	for off := 0; off < n; off += chunk {
		vecs := synth.Clustered(min(chunk, n-off), 1280, 20, 1, int64(off))
		items := make([]Item, len(vecs))
		for i, v := range vecs {
			items[i] = Item{ID: fmt.Sprintf("sku-%07d", off+i), Vector: v, Metadata: []byte(`{"category":"c` + strconv.Itoa(i%50) + `","price":` + strconv.Itoa(i%500) + `}`)}
		}
		if err := c.Upsert(ctx, items...); err != nil {
			b.Fatal(err)
		}
	}
	fmt.Printf("built %d items through Upsert in %.1fs\n", n, time.Since(start).Seconds())
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	q := synth.Clustered(1, 1280, 20, 1, 7)[0]
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		db, err := Open(dir, &Options{SnapshotInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		c, _ := db.Collection("load")
		if res, err := c.Search(ctx, q, SearchOptions{K: 10}); err != nil || len(res) != 10 {
			b.Fatalf("search after load: %v", err)
		}
		took := time.Since(start)
		fmt.Printf("open+first search of %d x 1280-d: %.2fs (graph from %s)\n", n, took.Seconds(), c.loadedFrom)
		b.ReportMetric(took.Seconds(), "load_s")
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
}
