package quality

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

func judged(rel ...any) []Judged {
	out := make([]Judged, len(rel))
	for i, r := range rel {
		out[i].ID = fmt.Sprintf("r%d", i)
		if b, ok := r.(bool); ok {
			out[i].Relevant = &b
		}
	}
	return out
}

// TestFeedbackWindow scripts events on a fake clock and checks precision@k and click-through rate
// against hand-computed values, including a merged query_id and the window sliding past an event.
func TestFeedbackWindow(t *testing.T) {
	db := openTestDB(t)
	// The collection must exist: feedback for an unknown one is refused, and the monitor's
	// background pass forgets (and unexports) the windows of collections that are gone.
	if _, err := db.CreateCollection("c", index.CollectionConfig{Fingerprint: "fp", Dims: 4}); err != nil {
		t.Fatal(err)
	}
	q, clk := newTestMonitor(t, db, func(c *config.Config) { c.Quality.FeedbackWindow = time.Hour })
	steps := []struct {
		at       time.Duration
		fb       Feedback
		events   int
		judged   int
		prec     float64
		clicked  int
		ctrValue float64
	}{
		// P@2 of T F = 1/2.
		{0, Feedback{K: 2, Results: judged(true, false, true, false)}, 1, 1, 1.0 / 2, 0, 0},
		// P@2 of T T = 1, clicked.
		{10 * time.Minute, Feedback{QueryID: "q2", K: 2, Results: judged(true, true), Clicked: []string{"r0"}}, 2, 2, (0.5 + 1) / 2, 1, 1.0 / 2},
		// A click without judgements.
		{20 * time.Minute, Feedback{QueryID: "q3", K: 3, Clicked: []string{"r1"}}, 3, 2, (0.5 + 1) / 2, 2, 2.0 / 3},
		// The same query judged later: merged, P@3 over the judged F (skip) T T = 2/3.
		{30 * time.Minute, Feedback{QueryID: "q3", K: 3, Results: judged(false, nil, true, true)}, 3, 3, (0.5 + 1 + 2.0/3) / 3, 2, 2.0 / 3},
		// 65 min: the first event (t=0) left the window. P@1 of F = 0.
		{65 * time.Minute, Feedback{K: 1, Results: judged(false)}, 3, 3, (1 + 2.0/3 + 0) / 3, 2, 2.0 / 3},
		// 75 min: q2 (t=10m) left too; q3 is dated by its first report (20m), so it stays.
		{75 * time.Minute, Feedback{K: 1, Results: judged(true)}, 3, 3, (2.0/3 + 0 + 1) / 3, 1, 1.0 / 3},
	}
	for i, st := range steps {
		clk.set(st.at)
		sum, err := q.RecordFeedback("c", st.fb)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if sum.Events != st.events || sum.Judged != st.judged || sum.Clicked != st.clicked {
			t.Fatalf("step %d: events/judged/clicked %d/%d/%d, want %d/%d/%d", i, sum.Events, sum.Judged, sum.Clicked, st.events, st.judged, st.clicked)
		}
		if math.Abs(sum.PrecisionAtK-st.prec) > 1e-12 || math.Abs(sum.ClickThroughRate-st.ctrValue) > 1e-12 {
			t.Fatalf("step %d: precision %v ctr %v, want %v %v", i, sum.PrecisionAtK, sum.ClickThroughRate, st.prec, st.ctrValue)
		}
		if g := metricValue(t, q.m.precision.WithLabelValues("c")); math.Abs(g-st.prec) > 1e-12 {
			t.Fatalf("step %d: precision gauge %v, want %v", i, g, st.prec)
		}
		if g := metricValue(t, q.m.ctr.WithLabelValues("c")); math.Abs(g-st.ctrValue) > 1e-12 {
			t.Fatalf("step %d: ctr gauge %v, want %v", i, g, st.ctrValue)
		}
	}
	// The summary reports the same window at the default k.
	fb := q.Summary().Collections["c"].Feedback
	if fb == nil || fb.Events != 3 || math.Abs(fb.PrecisionAtK-(2.0/3+0+1)/3) > 1e-12 || fb.K != config.Default().Limits.DefaultK {
		t.Fatalf("summary feedback %+v", fb)
	}
	// Two hours after the last event the window is empty: the gauges say "not measured" (NaN).
	clk.set(3 * time.Hour)
	q.refreshGauges()
	for _, g := range []*prometheus.GaugeVec{q.m.precision, q.m.ctr} {
		if n, v := seriesCount(g), metricValue(t, g); n != 1 || !math.IsNaN(v) {
			t.Fatalf("feedback gauge after the window: %d series, value %v; want one NaN", n, v)
		}
	}
}

func TestFeedbackPrecision(t *testing.T) {
	tests := []struct {
		results []Judged
		k       int
		want    float64
		ok      bool
	}{
		{judged(true, false, true), 3, 2.0 / 3, true},
		{judged(true, false, true), 2, 1.0 / 2, true},
		{judged(true, false), 10, 1.0 / 2, true}, // fewer judged than k: over what was judged
		{judged(nil, nil, true), 1, 1, true},
		{judged(nil), 5, 0, false},
		{nil, 5, 0, false},
	}
	for i, tt := range tests {
		got, ok := precisionAtK(tt.results, tt.k)
		if got != tt.want || ok != tt.ok {
			t.Errorf("case %d: got %v %v, want %v %v", i, got, ok, tt.want, tt.ok)
		}
	}
}

// TestCheckFeedback: what the limits refuse, with a message naming the field; k defaults.
func TestCheckFeedback(t *testing.T) {
	lim := config.Default().Limits
	lim.MaxK, lim.DefaultK, lim.MaxIDBytes = 3, 2, 4
	tests := []struct {
		name string
		fb   Feedback
		msg  string // "" = accepted
	}{
		{"click only, default k", Feedback{Clicked: []string{"a"}}, ""},
		{"judged at k", Feedback{K: 3, Results: judged(true, false, true)}, ""},
		{"nothing", Feedback{QueryID: "q"}, "needs results"},
		{"too many results", Feedback{Results: judged(true, true, true, true)}, "results has 4 entries, the limit is 3"},
		{"too many clicks", Feedback{Clicked: []string{"a", "b", "c", "d"}}, "clicked has 4 entries"},
		{"negative k", Feedback{K: -1, Clicked: []string{"a"}}, "k must be in 1..3, got -1"},
		{"k above max", Feedback{K: 4, Clicked: []string{"a"}}, "k must be in 1..3, got 4"},
		{"long query id", Feedback{QueryID: "query", Clicked: []string{"a"}}, "query_id is longer than 4 bytes"},
		{"empty result id", Feedback{Results: []Judged{{ID: ""}}}, "results[0].id must be 1..4 bytes"},
		{"long clicked id", Feedback{Clicked: []string{"a", "abcde"}}, "clicked[1] must be 1..4 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := tt.fb
			err := CheckFeedback(&fb, lim)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tt.fb.K == 0 && fb.K != lim.DefaultK {
					t.Fatalf("k %d, want the default %d", fb.K, lim.DefaultK)
				}
				return
			}
			if !errors.Is(err, ErrInvalidFeedback) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %v, want ErrInvalidFeedback naming %q", err, tt.msg)
			}
		})
	}
}

// TestRecordFeedbackRefuses: invalid feedback and unknown collections record nothing.
func TestRecordFeedbackRefuses(t *testing.T) {
	db := openTestDB(t)
	if _, err := db.CreateCollection("c", index.CollectionConfig{Fingerprint: "fp", Dims: 4}); err != nil {
		t.Fatal(err)
	}
	q, _ := newTestMonitor(t, db, nil)
	if _, err := q.RecordFeedback("nope", Feedback{Clicked: []string{"a"}}); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("unknown collection: %v, want index.ErrNotFound", err)
	}
	if _, err := q.RecordFeedback("c", Feedback{}); !errors.Is(err, ErrInvalidFeedback) {
		t.Fatalf("empty feedback: %v, want ErrInvalidFeedback", err)
	}
	if s := q.Summary(); !s.Empty() {
		t.Fatalf("refused feedback was recorded: %+v", s)
	}
}
