package index

import (
	"os"
	"strconv"
	"testing"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkSearch measures one HNSW search (k=10, default ef) with
// allocations, on LOOKALIKE_BENCH_N (default 20000) clustered 1280-d vectors,
// with float and with SQ8 storage (re-scored from an in-memory copy here).
func BenchmarkSearch(b *testing.B) {
	n := envInt("LOOKALIKE_BENCH_N", 20000)
	vecs := synth.Clustered(n+256, 1280, max(1, n/500), 1, 1)
	tr := newSQ8Trainer(1280)
	for _, v := range vecs[:SQ8TrainAt] {
		tr.add(v)
	}
	fetch := func(slot uint32, dst []float32) bool { copy(dst, vecs[slot]); return true }
	for _, kind := range []string{"float", "sq8"} {
		var q *sq8
		if kind == "sq8" {
			q = tr.quantizer()
		}
		g := buildParallel(b, vecs[:n], 16, 200, 0, q)
		b.Run(kind, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				q := vecs[n+i%256]
				hits := g.search(q, 10, DefaultEfSearch, nil)
				if g.sq != nil {
					rescore(q, hits, 10, fetch)
				}
			}
		})
	}
}
