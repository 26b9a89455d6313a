package quality

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"

	"github.com/lookalike/lookalike/index"
)

// catalogCentroid is the sum of the unit vectors of up to centroidSample items, chosen uniformly
// (reservoir sampling over the id listing, which carries no vectors). Only its direction matters.
func catalogCentroid(ctx context.Context, col *index.Collection) ([]float64, error) {
	ids, err := sampleIDs(ctx, col)
	if err != nil {
		return nil, err
	}
	var sum []float64
	for _, id := range ids {
		it, err := col.Get(id)
		if errors.Is(err, index.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		if sum == nil {
			sum = make([]float64, len(it.Vector))
		}
		if len(it.Vector) == len(sum) {
			addUnit(sum, it.Vector)
		}
	}
	return sum, nil
}

// sampleIDs draws up to centroidSample ids uniformly from the collection, with a fixed seed so that
// an unchanged catalog gives the same centroid.
func sampleIDs(ctx context.Context, col *index.Collection) ([]string, error) {
	var ids []string
	seen := 0
	rng := rand.New(rand.NewPCG(1, 2))
	cursor := ""
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		items, next, err := col.List(cursor, 10_000)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			seen++
			if len(ids) < centroidSample {
				ids = append(ids, it.ID)
			} else if j := rng.IntN(seen); j < centroidSample {
				ids[j] = it.ID
			}
		}
		if next == "" {
			return ids, nil
		}
		cursor = next
	}
}

func cosineDistance(a, b []float64) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += a[i] * b[i]
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	if na == 0 || nb == 0 {
		return math.NaN()
	}
	return 1 - dot/math.Sqrt(na*nb)
}

// refreshCentroids recomputes the catalog centroid of queried collections whose size changed, at
// most every centroidEvery.
func (q *Monitor) refreshCentroids(ctx context.Context) {
	for _, name := range q.centroidsDue() {
		col, err := q.db.Collection(name)
		if err != nil {
			continue
		}
		n := col.Info().Count
		if !q.centroidStale(name, n) {
			continue
		}
		sum, err := catalogCentroid(ctx, col)
		if err != nil {
			if ctx.Err() == nil {
				q.log.Debug("quality: catalog centroid", "collection", name, "err", err)
			}
			continue
		}
		q.mu.Lock()
		c := q.colLocked(name)
		c.catalog, c.catalogCount, c.catalogAt = sum, n, q.now()
		q.mu.Unlock()
	}
}

// centroidsDue names the collections without a centroid or with one older than centroidEvery.
func (q *Monitor) centroidsDue() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var names []string
	for name, c := range q.cols {
		if c.catalog == nil || q.now().Sub(c.catalogAt) >= centroidEvery {
			names = append(names, name)
		}
	}
	return names
}

// centroidStale: the collection has no centroid, or its size is no longer the one it was computed at.
func (q *Monitor) centroidStale(name string, count int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.colLocked(name)
	return c.catalog == nil || count != c.catalogCount
}
