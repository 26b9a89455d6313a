package index

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// BenchSearchOptions configure BenchSearch. Zero values: N 100000 synthetic
// vectors (ignored with Base: the file's size, or its first N), Queries 1000,
// Dim 1280, K 10, Efs 16..256, M 16, EfConstruction 200.
type BenchSearchOptions struct {
	N, Queries, Dim, K int
	Efs                []int
	// Base and QueriesFile are .fvecs files (TEXMEX); with Base empty the
	// data is SyntheticClustered. With Base set and QueriesFile empty, the
	// last Queries base vectors become the queries.
	Base, QueriesFile string
	// Baseline adds github.com/coder/hnsw v0.6.1 rows (see bench_baseline.go).
	Baseline          bool
	M, EfConstruction int
	Logger            *slog.Logger
}

// BenchSearchReport is BenchSearch's result: build time of our graph, and
// per index and ef the recall@K against exact search and single-thread QPS.
type BenchSearchReport struct {
	N      int        `json:"n"`
	Dim    int        `json:"dim"`
	K      int        `json:"k"`
	BuildS float64    `json:"build_s"`
	Rows   []BenchRow `json:"rows"`
}

// BenchRow is one measured configuration. BuildS is set on the first row of
// an index that had to be built (the baseline).
type BenchRow struct {
	Index  string  `json:"index"` // "lookalike" | "exact" | "coder/hnsw"
	Ef     int     `json:"ef"`
	Recall float64 `json:"recall"`
	QPS    float64 `json:"qps"`
	BuildS float64 `json:"build_s,omitempty"`
}

// BenchSearch builds our HNSW over the base vectors on one goroutine, then
// for each ef runs every query sequentially (one core), reporting recall@K
// against brute force and queries per second; brute force itself is a row.
// It uses the in-memory index core (no bbolt) so that the numbers compare
// like for like with other in-memory indexes on the same vectors.
func BenchSearch(ctx context.Context, o BenchSearchOptions) (BenchSearchReport, error) {
	if o.Queries <= 0 {
		o.Queries = 1000
	}
	if o.Dim <= 0 {
		o.Dim = 1280
	}
	if o.K <= 0 {
		o.K = 10
	}
	if len(o.Efs) == 0 {
		o.Efs = []int{16, 32, 64, 128, 256}
	}
	if o.M <= 0 {
		o.M = DefaultM
	}
	if o.EfConstruction <= 0 {
		o.EfConstruction = DefaultEfConstruction
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var base, queries [][]float32
	var err error
	switch {
	case o.Base != "":
		if base, err = ReadFvecs(o.Base); err != nil {
			return BenchSearchReport{}, err
		}
		if o.QueriesFile != "" {
			if queries, err = ReadFvecs(o.QueriesFile); err != nil {
				return BenchSearchReport{}, err
			}
		} else {
			nq := min(o.Queries, len(base)/2)
			base, queries = base[:len(base)-nq], base[len(base)-nq:]
		}
		if o.N > 0 && o.N < len(base) {
			base = base[:o.N]
		}
	default:
		if o.N <= 0 {
			o.N = 100000
		}
		all := SyntheticClustered(o.N+o.Queries, o.Dim, max(1, o.N/500), 1.0, 1)
		base, queries = all[:o.N], all[o.N:]
	}
	if len(base) == 0 || len(queries) == 0 {
		return BenchSearchReport{}, fmt.Errorf("index: bench: no base vectors or queries")
	}
	dim := len(base[0])
	for i, v := range queries {
		if len(v) != dim {
			return BenchSearchReport{}, fmt.Errorf("index: bench: query %d has %d dims, base %d", i, len(v), dim)
		}
	}
	// Normalise (idempotent for unit vectors; matches inner-product peers).
	norm := func(vs [][]float32) ([][]float32, error) {
		out := make([][]float32, len(vs))
		for i, v := range vs {
			n, ok := normalize(v)
			if !ok {
				return nil, fmt.Errorf("index: bench: vector %d is zero or not finite", i)
			}
			out[i] = n
		}
		return out, nil
	}
	if base, err = norm(base); err != nil {
		return BenchSearchReport{}, err
	}
	if queries, err = norm(queries); err != nil {
		return BenchSearchReport{}, err
	}
	rep := BenchSearchReport{N: len(base), Dim: dim, K: o.K}

	log.Info("building", "n", len(base), "dim", dim, "M", o.M, "efConstruction", o.EfConstruction)
	start := time.Now()
	g := newGraph(dim, o.M, o.EfConstruction, 0, 42)
	g.reserve(len(base))
	for i, v := range base {
		if i%4096 == 0 && ctx.Err() != nil {
			return rep, ctx.Err()
		}
		g.setVector(uint32(i), v)
		g.insert(uint32(i))
	}
	rep.BuildS = time.Since(start).Seconds()
	log.Info("built", "seconds", rep.BuildS, "levels", g.maxLevel+1)

	// Ground truth by brute force, timed: the exact row.
	truth := make([][]uint32, len(queries))
	start = time.Now()
	for i, q := range queries {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		for _, c := range g.exact(q, o.K, nil, nil) {
			truth[i] = append(truth[i], c.id)
		}
	}
	rep.Rows = append(rep.Rows, BenchRow{Index: "exact", Recall: 1, QPS: float64(len(queries)) / time.Since(start).Seconds()})
	log.Info("exact", "qps", rep.Rows[0].QPS)

	recall := func(got [][]uint32) float64 {
		hit, tot := 0, 0
		for i, want := range truth {
			set := make(map[uint32]bool, len(want))
			for _, x := range want {
				set[x] = true
			}
			for _, x := range got[i] {
				if set[x] {
					hit++
				}
			}
			tot += len(want)
		}
		return float64(hit) / float64(max(tot, 1))
	}
	got := make([][]uint32, len(queries))
	for _, ef := range o.Efs {
		start = time.Now()
		for i, q := range queries {
			res := g.search(q, o.K, ef, nil)
			ids := got[i][:0]
			for _, c := range res {
				ids = append(ids, c.id)
			}
			got[i] = ids
		}
		qps := float64(len(queries)) / time.Since(start).Seconds()
		row := BenchRow{Index: "lookalike", Ef: ef, Recall: recall(got), QPS: qps}
		rep.Rows = append(rep.Rows, row)
		log.Info("lookalike", "ef", ef, "recall", row.Recall, "qps", qps)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	if o.Baseline {
		rows, err := benchBaseline(ctx, base, queries, o, recall, log)
		rep.Rows = append(rep.Rows, rows...)
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}
