package quality

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookalike/lookalike/index"
)

// maintainLoop refreshes windowed gauges, recomputes catalog centroids when collections change and
// runs the probes on their interval and after every change of the probed collection.
func (q *Monitor) maintainLoop(ctx context.Context) {
	tick := time.NewTicker(maintainEvery)
	defer tick.Stop()
	probing := len(q.probes.Manifests) > 0
	var lastProbe, lastChangeCheck time.Time
	probeCount := -1
	if probing {
		q.loadProbes(ctx)
	}
	for {
		now := q.now()
		if now.Sub(lastChangeCheck) >= changeEvery {
			lastChangeCheck = now
			q.refreshCentroids(ctx)
			if probing {
				if col, err := q.db.Collection(q.probes.Collection); err == nil {
					if n := col.Info().Count; n != probeCount {
						probeCount = n
						lastProbe = time.Time{} // index changed: probe now
					}
				}
			}
		}
		if probing && now.Sub(lastProbe) >= q.probes.Interval {
			q.RunProbes(ctx) // also retries sets that failed to load
			lastProbe = q.now()
		}
		q.refreshGauges()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// refreshGauges publishes the windowed figures, so they decay when traffic stops, and forgets the
// windows and series of dropped collections.
func (q *Monitor) refreshGauges() {
	type pub struct {
		name string
		fb   FeedbackSummary
		d    DriftSummary
	}
	var out []pub
	var gone []string
	func() {
		now := q.now()
		q.mu.Lock()
		defer q.mu.Unlock()
		for name, c := range q.cols {
			if _, err := q.db.Collection(name); errors.Is(err, index.ErrNotFound) {
				delete(q.cols, name)
				gone = append(gone, name)
				continue
			}
			q.pruneFeedbackLocked(c, now)
			out = append(out, pub{name, feedbackSummaryLocked(c, q.cfg.Limits.DefaultK), q.driftLocked(c, now)})
		}
	}()
	for _, name := range gone {
		for _, v := range []*prometheus.GaugeVec{q.m.recall, q.m.precision, q.m.ctr, q.m.lowShare, q.m.centroid} {
			v.DeleteLabelValues(name)
		}
	}
	for _, p := range out {
		q.setFeedbackGauges(p.name, p.fb)
		if p.d.Queries > 0 {
			q.m.lowShare.WithLabelValues(p.name).Set(p.d.LowScoreShare)
		} else {
			q.m.lowShare.DeleteLabelValues(p.name)
		}
		if p.d.HasCentroid {
			q.m.centroid.WithLabelValues(p.name).Set(p.d.CentroidDistance)
		} else {
			q.m.centroid.DeleteLabelValues(p.name)
		}
	}
}
