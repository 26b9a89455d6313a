package quality

import (
	"time"
)

// Summary is everything the monitor knows right now, for a status page. Collections holds only
// collections with something to show; both maps are empty before the first search, feedback or
// probe set.
type Summary struct {
	Window           time.Duration // quality.feedback_window
	RecallSampleRate float64
	Collections      map[string]CollectionSummary
	Probes           map[string]ProbeSummary // by set name (the manifest's file name)
}

// Empty reports whether there is nothing to show.
func (s Summary) Empty() bool { return len(s.Collections) == 0 && len(s.Probes) == 0 }

// CollectionSummary is one collection's windows; a nil part has no data in its window.
type CollectionSummary struct {
	Recall   *RecallSummary
	Feedback *FeedbackSummary
	Drift    *DriftSummary
}

// RecallSummary: Mean is the mean recall@k of the latest WindowSamples (at most 100) of Samples
// sampled searches.
type RecallSummary struct {
	Mean          float64
	Samples       int
	WindowSamples int
}

// ProbeSummary is one probe set's setup and latest run. PrecisionAtK, HitRateAtK and LastRun are
// meaningful once Runs > 0; LastError is the last failed probe search of the latest run ("" if none).
type ProbeSummary struct {
	Collection   string
	Probes       int // usable probes
	Failed       int // probes whose photo could not be read, labelled or embedded
	K            int
	Runs         int
	PrecisionAtK float64
	HitRateAtK   float64
	LastRun      time.Time
	LastError    string
}

// Summary returns the current windows of every collection and the probe sets' latest runs.
func (q *Monitor) Summary() Summary {
	now := q.now()
	q.mu.Lock()
	defer q.mu.Unlock()
	out := Summary{
		Window: q.window, RecallSampleRate: q.cfg.Quality.RecallSampleRate,
		Collections: map[string]CollectionSummary{}, Probes: map[string]ProbeSummary{},
	}
	for name, c := range q.cols {
		q.pruneFeedbackLocked(c, now)
		var cs CollectionSummary
		if r, ok := c.recallSummaryLocked(); ok {
			cs.Recall = &r
		}
		if len(c.feedback) > 0 {
			fb := feedbackSummaryLocked(c, q.cfg.Limits.DefaultK)
			cs.Feedback = &fb
		}
		if d := q.driftLocked(c, now); d.Queries > 0 {
			cs.Drift = &d
		}
		if cs.Recall != nil || cs.Feedback != nil || cs.Drift != nil {
			out.Collections[name] = cs
		}
	}
	for name, ps := range q.probeSets {
		out.Probes[name] = ProbeSummary{
			Collection: q.probes.Collection, Probes: len(ps.probes), Failed: ps.failed, K: q.probes.K, Runs: ps.runs,
			PrecisionAtK: ps.precision, HitRateAtK: ps.hitRate, LastRun: ps.lastRun, LastError: ps.lastErr,
		}
	}
	return out
}
