package bench

// This is the only file in the module that imports github.com/coder/hnsw.
// The index never uses it: v0.6.1 (the only release the proxy serves) has a
// broken search (its heap's Max/PopLast return the last slot of a min-heap,
// and the layer search bounds results by k, not efSearch), which is why
// Lookalike has its own HNSW. It stays as the search benchmark's baseline
// (`lookalike bench search`), so that the day a fixed release appears the
// benchmark says whether switching back is worthwhile.

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/coder/hnsw"
)

func coderBaseline(ctx context.Context, base *FvecsFile, n int, queries [][]float32, o SearchOptions, recall func([][]uint32) float64, log *slog.Logger) (rows []Row, err error) {
	defer func() {
		if r := recover(); r != nil { // a third-party panic must not cross our boundary
			err = fmt.Errorf("bench: coder/hnsw panicked: %v", r)
		}
	}()
	g := hnsw.NewGraph[uint32]()
	g.M = o.M
	g.Distance = hnsw.CosineDistance
	g.EfSearch = o.EfConstruction // coder/hnsw uses EfSearch while inserting too
	start := time.Now()
	for i := range n {
		if i%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		g.Add(hnsw.MakeNode(uint32(i), base.Row(i))) // aliases the mapping, which outlives g
	}
	buildS := time.Since(start).Seconds()
	log.Info("coder/hnsw built", "seconds", buildS)
	got := make([][]uint32, len(queries))
	for _, ef := range o.Efs {
		g.EfSearch = ef
		start = time.Now()
		for i, q := range queries {
			res := g.Search(q, o.K)
			ids := got[i][:0]
			for _, n := range res {
				ids = append(ids, n.Key)
			}
			got[i] = ids
		}
		row := Row{Index: "coder/hnsw", Ef: ef, Recall: recall(got), QPS: float64(len(queries)) / time.Since(start).Seconds()}
		if len(rows) == 0 {
			row.BuildS = buildS
		}
		rows = append(rows, row)
		log.Info("coder/hnsw", "ef", ef, "recall", row.Recall, "qps", row.QPS)
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
	}
	return rows, nil
}
