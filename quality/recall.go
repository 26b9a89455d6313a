package quality

import (
	"context"
	"math"
)

// measureRecall re-runs a sampled search exactly and adds its recall to the collection's ring.
func (q *Monitor) measureRecall(ctx context.Context, o observation) {
	name := o.col.Name()
	opts := o.opts
	opts.Exact = true
	exact, err := o.col.Search(ctx, o.query, opts)
	if err != nil {
		if ctx.Err() == nil {
			q.log.Debug("quality: exact re-run failed", "collection", name, "err", err)
			q.m.recallSamples.WithLabelValues(name, "error").Inc()
		}
		return
	}
	exactIDs := make([]string, len(exact))
	for i, r := range exact {
		exactIDs[i] = r.ID
	}
	// Both answers hold at most opts.K ids: no truncation, recall over the whole exact answer.
	rec := Overlap(o.ids, exactIDs, max(len(o.ids), len(exactIDs)))
	q.m.recallSamples.WithLabelValues(name, "measured").Inc()
	q.m.recallHist.WithLabelValues(name).Observe(rec)
	q.m.recall.WithLabelValues(name).Set(q.addRecall(name, rec))
}

// addRecall puts one sample in the collection's ring and returns the ring's new mean.
func (q *Monitor) addRecall(name string, rec float64) float64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.colLocked(name)
	c.recall[c.recallN%recallRing] = rec
	c.recallN++
	return c.recallMean()
}

// Overlap is recall@k of an approximate answer against the exact one: the share of the exact top-k
// ids found in the approximate top-k. An empty exact answer gives 1. It is the one implementation of
// the formula: the live recall sampler and the offline evaluation (eval.Overlap) both use it.
func Overlap(approx, exact []string, k int) float64 {
	if len(exact) > k {
		exact = exact[:k]
	}
	if len(approx) > k {
		approx = approx[:k]
	}
	if len(exact) == 0 {
		return 1
	}
	set := make(map[string]bool, len(approx))
	for _, id := range approx {
		set[id] = true
	}
	n := 0
	for _, id := range exact {
		if set[id] {
			n++
		}
	}
	return float64(n) / float64(len(exact))
}

// recallMean is the mean of the ring's filled slots (NaN when empty).
func (c *colQuality) recallMean() float64 {
	n := min(c.recallN, recallRing)
	if n == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range c.recall[:n] {
		s += v
	}
	return s / float64(n)
}

// recallSummaryLocked is the ring's figures; ok is false before the first sample.
func (c *colQuality) recallSummaryLocked() (s RecallSummary, ok bool) {
	n := min(c.recallN, recallRing)
	if n == 0 {
		return RecallSummary{}, false
	}
	return RecallSummary{Mean: c.recallMean(), Samples: c.recallN, WindowSamples: n}, true
}
