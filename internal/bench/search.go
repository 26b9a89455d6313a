package bench

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/bench/synth"
)

// SearchOptions configure Search. Zero values: N 100000 synthetic vectors (ignored with Base: the
// file's size, or its first N), Queries 1000, Dim 1280, K 10, Efs 16..256, M index.DefaultM,
// EfConstruction index.DefaultEfConstruction.
type SearchOptions struct {
	N, Queries, Dim, K int
	Efs                []int
	// Base and QueriesFile are .fvecs files (TEXMEX); with Base empty the data is
	// synth.Clustered. With Base set and QueriesFile empty, the last Queries base vectors become the
	// queries.
	Base, QueriesFile string
	// Baseline adds github.com/coder/hnsw v0.6.1 rows (see baseline.go).
	Baseline          bool
	M, EfConstruction int
	Logger            *slog.Logger
}

// SearchReport is Search's result: build time of our graph, and per index and ef the recall@K
// against exact search and single-thread QPS.
type SearchReport struct {
	N      int     `json:"n"`
	Dim    int     `json:"dim"`
	K      int     `json:"k"`
	BuildS float64 `json:"build_s"`
	Rows   []Row   `json:"rows"`
}

// Row is one measured configuration. BuildS is set on the first row of an index that had to be
// built (the baseline).
type Row struct {
	Index  string  `json:"index"` // "lookalike" | "exact" | "coder/hnsw" | a peer's name
	Ef     int     `json:"ef"`
	Recall float64 `json:"recall"`
	QPS    float64 `json:"qps"`
	BuildS float64 `json:"build_s,omitempty"`
}

// Search builds our HNSW over the base vectors on one goroutine, then for each ef runs every query
// sequentially (one core), reporting recall@K against brute force and queries per second; brute
// force itself is a row. It uses the in-memory index core (index.Graph, no bbolt) so that the
// numbers compare like for like with other in-memory indexes on the same vectors.
func Search(ctx context.Context, o SearchOptions) (SearchReport, error) {
	o = o.withDefaults()
	log := o.Logger
	base, queries, err := searchData(o)
	if err != nil {
		return SearchReport{}, err
	}
	dim := len(base[0])
	rep := SearchReport{N: len(base), Dim: dim, K: o.K}

	log.Info("building", "n", len(base), "dim", dim, "M", o.M, "efConstruction", o.EfConstruction)
	start := time.Now()
	g := index.NewGraph(dim, o.M, o.EfConstruction, 42)
	g.Reserve(len(base))
	for i, v := range base {
		if i%4096 == 0 && ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if err := g.Add(v); err != nil {
			return rep, fmt.Errorf("bench: base vector %d: %w", i, err)
		}
	}
	rep.BuildS = time.Since(start).Seconds()
	log.Info("built", "seconds", rep.BuildS, "levels", g.Levels())

	// Ground truth by brute force, timed: the exact row.
	truth := make([][]uint32, len(queries))
	start = time.Now()
	for i, q := range queries {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if truth[i], err = g.Exact(q, o.K); err != nil {
			return rep, fmt.Errorf("bench: query %d: %w", i, err)
		}
	}
	rep.Rows = append(rep.Rows, Row{Index: "exact", Recall: 1, QPS: float64(len(queries)) / time.Since(start).Seconds()})
	log.Info("exact", "qps", rep.Rows[0].QPS)

	recall := func(got [][]uint32) float64 { return recallOf(truth, got) }
	got := make([][]uint32, len(queries))
	for _, ef := range o.Efs {
		start = time.Now()
		for i, q := range queries {
			got[i], _ = g.Search(q, o.K, ef) // the queries passed Exact above
		}
		qps := float64(len(queries)) / time.Since(start).Seconds()
		row := Row{Index: "lookalike", Ef: ef, Recall: recall(got), QPS: qps}
		rep.Rows = append(rep.Rows, row)
		log.Info("lookalike", "ef", ef, "recall", row.Recall, "qps", qps)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	if o.Baseline {
		rows, err := coderBaseline(ctx, base, queries, o, recall, log)
		rep.Rows = append(rep.Rows, rows...)
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func (o SearchOptions) withDefaults() SearchOptions {
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
		o.M = index.DefaultM
	}
	if o.EfConstruction <= 0 {
		o.EfConstruction = index.DefaultEfConstruction
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// searchData reads or makes the base vectors and the queries (index.Graph normalises them, which
// matches inner-product peers on unit vectors).
func searchData(o SearchOptions) (base, queries [][]float32, err error) {
	switch {
	case o.Base != "":
		if base, err = ReadFvecs(o.Base); err != nil {
			return nil, nil, err
		}
		if o.QueriesFile != "" {
			if queries, err = ReadFvecs(o.QueriesFile); err != nil {
				return nil, nil, err
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
		all := synth.Clustered(o.N+o.Queries, o.Dim, max(1, o.N/500), 1.0, 1)
		base, queries = all[:o.N], all[o.N:]
	}
	if len(base) == 0 || len(queries) == 0 {
		return nil, nil, fmt.Errorf("bench: no base vectors or queries")
	}
	dim := len(base[0])
	for i, v := range queries {
		if len(v) != dim {
			return nil, nil, fmt.Errorf("bench: query %d has %d dims, base %d", i, len(v), dim)
		}
	}
	return base, queries, nil
}

// recallOf is the mean recall of got against truth: the share of each truth list found in the
// matching got list.
func recallOf(truth, got [][]uint32) float64 {
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
