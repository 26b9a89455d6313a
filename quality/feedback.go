package quality

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/lookalike/lookalike/internal/config"
)

// Feedback is one report from the storefront about one result list. Results are the results shown,
// in rank order, each optionally judged; Clicked lists ids the user clicked. A repeated QueryID (a
// click arriving after the impression) updates the earlier event instead of counting twice.
type Feedback struct {
	QueryID string
	K       int // precision@K; 0 means limits.default_k
	Results []Judged
	Clicked []string
}

// Judged is one shown result; Relevant is nil when it was not judged.
type Judged struct {
	ID       string
	Relevant *bool
}

// FeedbackSummary is the feedback window of one collection. PrecisionAtK is the mean of the judged
// events' precision@k (macro average); ClickThroughRate is the share of events with a click.
type FeedbackSummary struct {
	Events           int
	Judged           int
	PrecisionAtK     float64
	K                int
	Clicked          int
	ClickThroughRate float64
}

type feedbackEvent struct {
	at        time.Time
	queryID   string
	judged    bool
	precision float64 // precision@k over the first k judged results
	clicked   bool
}

// CheckFeedback validates f against the limits and sets K to lim.DefaultK when it is 0. Errors wrap
// ErrInvalidFeedback and name the field.
func CheckFeedback(f *Feedback, lim config.Limits) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidFeedback}, args...)...)
	}
	switch {
	case len(f.Results) == 0 && len(f.Clicked) == 0:
		return bad("feedback needs results (judged, in rank order) or clicked ids")
	case len(f.Results) > lim.MaxK:
		return bad("results has %d entries, the limit is %d (limits.max_k)", len(f.Results), lim.MaxK)
	case len(f.Clicked) > lim.MaxK:
		return bad("clicked has %d entries, the limit is %d (limits.max_k)", len(f.Clicked), lim.MaxK)
	case f.K < 0 || f.K > lim.MaxK:
		return bad("k must be in 1..%d, got %d", lim.MaxK, f.K)
	case len(f.QueryID) > lim.MaxIDBytes:
		return bad("query_id is longer than %d bytes", lim.MaxIDBytes)
	}
	for i, r := range f.Results {
		if r.ID == "" || len(r.ID) > lim.MaxIDBytes {
			return bad("results[%d].id must be 1..%d bytes", i, lim.MaxIDBytes)
		}
	}
	for i, id := range f.Clicked {
		if id == "" || len(id) > lim.MaxIDBytes {
			return bad("clicked[%d] must be 1..%d bytes", i, lim.MaxIDBytes)
		}
	}
	if f.K == 0 {
		f.K = lim.DefaultK
	}
	return nil
}

// precisionAtK is precision@k of one judged list: relevant among the first k judged results, over
// min(k, judged). ok is false when nothing was judged.
func precisionAtK(results []Judged, k int) (p float64, ok bool) {
	n, rel := 0, 0
	for _, r := range results {
		if r.Relevant == nil {
			continue
		}
		if n == k {
			break
		}
		n++
		if *r.Relevant {
			rel++
		}
	}
	if n == 0 {
		return 0, false
	}
	return float64(rel) / float64(n), true
}

// RecordFeedback checks f (CheckFeedback), adds it to the collection's window and returns the
// window. The collection must exist (an error wrapping index.ErrNotFound otherwise).
func (q *Monitor) RecordFeedback(collection string, f Feedback) (FeedbackSummary, error) {
	if err := CheckFeedback(&f, q.cfg.Limits); err != nil {
		return FeedbackSummary{}, err
	}
	if _, err := q.db.Collection(collection); err != nil {
		return FeedbackSummary{}, fmt.Errorf("quality: feedback for collection %q: %w", collection, err)
	}
	p, judged := precisionAtK(f.Results, f.K)
	clicked := len(f.Clicked) > 0
	sum := q.addFeedback(collection, f.QueryID, f.K, judged, p, clicked)
	kind := "impression"
	if clicked {
		kind = "click"
	}
	q.m.feedback.WithLabelValues(collection, kind).Inc()
	if judged {
		q.m.feedback.WithLabelValues(collection, "judged").Inc()
	}
	q.setFeedbackGauges(collection, sum)
	return sum, nil
}

// addFeedback adds or merges one event in the window and returns the window's summary at k.
func (q *Monitor) addFeedback(name, queryID string, k int, judged bool, p float64, clicked bool) FeedbackSummary {
	now := q.now()
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.colLocked(name)
	q.pruneFeedbackLocked(c, now)
	ev := c.byQuery[queryID]
	if queryID == "" || ev == nil {
		ev = &feedbackEvent{at: now, queryID: queryID}
		c.feedback = append(c.feedback, ev)
		if queryID != "" {
			c.byQuery[queryID] = ev
		}
		if len(c.feedback) > maxFeedback {
			dropOldestLocked(c, len(c.feedback)-maxFeedback)
		}
	}
	if judged {
		ev.judged, ev.precision = true, p
	}
	ev.clicked = ev.clicked || clicked
	return feedbackSummaryLocked(c, k)
}

// pruneFeedbackLocked drops the events that left the window; an event is dated by its first report.
func (q *Monitor) pruneFeedbackLocked(c *colQuality, now time.Time) {
	from := now.Add(-q.window)
	n := 0
	for n < len(c.feedback) && !c.feedback[n].at.After(from) {
		n++
	}
	dropOldestLocked(c, n)
}

func dropOldestLocked(c *colQuality, n int) {
	for _, ev := range c.feedback[:n] {
		if ev.queryID != "" && c.byQuery[ev.queryID] == ev {
			delete(c.byQuery, ev.queryID)
		}
	}
	c.feedback = slices.Delete(c.feedback, 0, n)
}

func feedbackSummaryLocked(c *colQuality, k int) FeedbackSummary {
	s := FeedbackSummary{Events: len(c.feedback), K: k}
	var psum float64
	for _, ev := range c.feedback {
		if ev.judged {
			s.Judged++
			psum += ev.precision
		}
		if ev.clicked {
			s.Clicked++
		}
	}
	if s.Judged > 0 {
		s.PrecisionAtK = psum / float64(s.Judged)
	}
	if s.Events > 0 {
		s.ClickThroughRate = float64(s.Clicked) / float64(s.Events)
	}
	return s
}

// setFeedbackGauges publishes a window; an empty one is NaN ("not measured"), not 0, which would
// read as a precision collapse.
func (q *Monitor) setFeedbackGauges(name string, s FeedbackSummary) {
	prec, ctr := math.NaN(), math.NaN()
	if s.Judged > 0 {
		prec = s.PrecisionAtK
	}
	if s.Events > 0 {
		ctr = s.ClickThroughRate
	}
	q.m.precision.WithLabelValues(name).Set(prec)
	q.m.ctr.WithLabelValues(name).Set(ctr)
}
