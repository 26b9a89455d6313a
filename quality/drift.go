package quality

import (
	"cmp"
	"math"
	"time"

	"github.com/lookalike/lookalike/embed/spec"
)

// driftBucket aggregates the queries of one slice (window/driftBuckets) of time.
type driftBucket struct {
	start   time.Time
	n, low  int
	scored  int
	sumTop1 float64
	bins    [scoreBins]int
	sumVec  []float64 // sum of the unit query vectors
}

// DriftSummary is the window's drift figures for one collection. The top-1 figures cover the
// searches that returned a result; CentroidDistance is NaN (and HasCentroid false) until the
// catalog's centroid is known.
type DriftSummary struct {
	Queries          int
	LowScoreShare    float64
	MinScore         float64
	Top1Mean         float64
	Top1P10          float64
	Top1P50          float64
	Top1P90          float64
	CentroidDistance float64
	HasCentroid      bool
}

func (q *Monitor) bucketDur() time.Duration {
	return max(q.window/driftBuckets, time.Second)
}

func (q *Monitor) recordDrift(o observation) {
	name := o.col.Name()
	q.m.queries.WithLabelValues(name).Inc()
	if o.hasTop {
		q.m.top1.WithLabelValues(name).Observe(float64(o.top1))
	}
	// quality.min_score is set for fast vectors; a regional profile scores unrelated photos higher
	minScore := spec.ThresholdFor(o.col.Fingerprint(), q.cfg.Quality.MinScore)
	low := !o.hasTop || float64(o.top1) < minScore
	if low {
		q.m.lowScore.WithLabelValues(name).Inc()
	}
	d := q.bucketDur()
	slot := q.now().Truncate(d)
	q.mu.Lock()
	defer q.mu.Unlock()
	cq := q.colLocked(name)
	cq.minScore = minScore
	b := &cq.drift[(slot.UnixNano()/int64(d))%driftBuckets]
	if !b.start.Equal(slot) {
		sv := b.sumVec[:0]
		*b = driftBucket{start: slot, sumVec: sv}
	}
	b.n++
	if low {
		b.low++
	}
	if o.hasTop {
		b.scored++
		b.sumTop1 += float64(o.top1)
		b.bins[min(max(int(o.top1*scoreBins), 0), scoreBins-1)]++
	}
	if len(b.sumVec) != len(o.query) {
		b.sumVec = make([]float64, len(o.query))
	}
	addUnit(b.sumVec, o.query)
}

// addUnit adds v scaled to unit length to sum (nothing for a zero vector).
func addUnit(sum []float64, v []float32) {
	var norm float64
	for _, x := range v {
		norm += float64(x) * float64(x)
	}
	if norm = math.Sqrt(norm); norm > 0 {
		for i, x := range v {
			sum[i] += float64(x) / norm
		}
	}
}

// driftLocked sums the buckets inside the window ending at now.
func (q *Monitor) driftLocked(c *colQuality, now time.Time) DriftSummary {
	s := DriftSummary{MinScore: cmp.Or(c.minScore, q.cfg.Quality.MinScore), CentroidDistance: math.NaN()}
	var bins [scoreBins]int
	var sum []float64
	var scored, low int
	var sumTop1 float64
	from := now.Add(-q.window)
	for i := range c.drift {
		b := &c.drift[i]
		if b.n == 0 || !b.start.After(from) {
			continue
		}
		s.Queries += b.n
		low += b.low
		scored += b.scored
		sumTop1 += b.sumTop1
		for j, v := range b.bins {
			bins[j] += v
		}
		if len(b.sumVec) > 0 {
			if sum == nil {
				sum = make([]float64, len(b.sumVec))
			}
			if len(sum) == len(b.sumVec) {
				for j, v := range b.sumVec {
					sum[j] += v
				}
			}
		}
	}
	if s.Queries == 0 {
		return s
	}
	s.LowScoreShare = float64(low) / float64(s.Queries)
	if scored > 0 {
		s.Top1Mean = sumTop1 / float64(scored)
		s.Top1P10, s.Top1P50, s.Top1P90 = binQuantile(bins, scored, .1), binQuantile(bins, scored, .5), binQuantile(bins, scored, .9)
	}
	if sum != nil && len(c.catalog) == len(sum) {
		s.CentroidDistance = cosineDistance(sum, c.catalog)
		s.HasCentroid = !math.IsNaN(s.CentroidDistance)
	}
	return s
}

// binQuantile interpolates a quantile within the histogram bin that holds it.
func binQuantile(bins [scoreBins]int, n int, p float64) float64 {
	target := p * float64(n)
	acc := 0.0
	for i, c := range bins {
		if c == 0 {
			continue
		}
		if acc+float64(c) >= target {
			frac := (target - acc) / float64(c)
			return (float64(i) + frac) / scoreBins
		}
		acc += float64(c)
	}
	return 1
}
