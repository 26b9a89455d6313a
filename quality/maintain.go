package quality

import (
	"context"
	"errors"
	"math"
	"time"

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
				if col, err := q.probed(); err == nil {
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

// refreshGauges publishes the windowed figures, so they decay when traffic stops (to NaN, "not
// measured", once the window is empty), seeds the series of new collections and forgets the
// windows and series of dropped ones.
func (q *Monitor) refreshGauges() {
	type pub struct {
		name string
		fb   FeedbackSummary
		d    DriftSummary
	}
	q.seedCollections()
	var out []pub
	var gone []string
	func() {
		now := q.now()
		q.mu.Lock()
		defer q.mu.Unlock()
		for name := range q.seeded {
			if _, err := q.db.Collection(name); errors.Is(err, index.ErrNotFound) {
				delete(q.seeded, name)
				delete(q.cols, name)
				gone = append(gone, name)
			}
		}
		for name, c := range q.cols {
			q.pruneFeedbackLocked(c, now)
			out = append(out, pub{name, feedbackSummaryLocked(c, q.cfg.Limits.DefaultK), q.driftLocked(c, now)})
		}
	}()
	for _, name := range gone {
		q.m.forgetCollection(name)
	}
	for _, p := range out {
		q.setFeedbackGauges(p.name, p.fb)
		share, dist := math.NaN(), math.NaN()
		if p.d.Queries > 0 {
			share = p.d.LowScoreShare
		}
		if p.d.HasCentroid {
			dist = p.d.CentroidDistance
		}
		q.m.lowShare.WithLabelValues(p.name).Set(share)
		q.m.centroid.WithLabelValues(p.name).Set(dist)
	}
}

// seedCollections creates the series of every collection of the DB not seeded yet.
func (q *Monitor) seedCollections() {
	var fresh []string
	q.mu.Lock()
	for _, ci := range q.db.Collections() {
		if !q.seeded[ci.Name] {
			q.seeded[ci.Name] = true
			fresh = append(fresh, ci.Name)
		}
	}
	q.mu.Unlock()
	for _, name := range fresh {
		q.m.seedCollection(name)
	}
}
