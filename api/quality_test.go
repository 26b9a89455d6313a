package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/bench/synth"
	"github.com/lookalike/lookalike/internal/config"
)

// newTestMonitor runs a quality monitor over db with a fake clock; it stops with the test.
func newTestMonitor(t *testing.T, db *index.DB, mutate func(*config.Config)) (*qualityMonitor, *fakeClock) {
	t.Helper()
	cfg := config.Default()
	if mutate != nil {
		mutate(&cfg)
	}
	q := newQualityMonitor(cfg, nil, db, prometheus.NewRegistry(), nil)
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	q.now = clk.now
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	q.start(ctx, &wg)
	t.Cleanup(func() { cancel(); wg.Wait() })
	return q, clk
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(d time.Duration) {
	c.mu.Lock()
	c.t = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(d)
	c.mu.Unlock()
}

func openTestDB(t *testing.T) *index.DB {
	t.Helper()
	db, err := index.Open(t.TempDir(), &index.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// metricValue is the value of a collector holding one gauge or counter series (NaN when none).
func metricValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	v := math.NaN()
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		switch {
		case pb.Gauge != nil:
			v = pb.Gauge.GetValue()
		case pb.Counter != nil:
			v = pb.Counter.GetValue()
		}
	}
	return v
}

func seriesCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}

// waitFor polls cond (the monitor works in the background) for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRecallSampler: with a beam covering the whole graph the HNSW answer is the exact one (recall
// 1.0); with ef=1 (beam = k) on a collection above the exact-search threshold it misses neighbours.
func TestRecallSampler(t *testing.T) {
	const n, dim, queries = index.DefaultExactThreshold + 1000, 32, 60
	db := openTestDB(t)
	col, err := db.CreateCollection("synth", index.CollectionConfig{Fingerprint: "synth", Dims: dim})
	if err != nil {
		t.Fatal(err)
	}
	vecs := synth.Clustered(n+queries, dim, 40, 0.6, 7)
	items := make([]index.Item, n)
	for i := range items {
		items[i] = index.Item{ID: fmt.Sprintf("v%05d", i), Vector: vecs[i]}
	}
	if err := col.Upsert(context.Background(), items...); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		ef     int
		starve bool
	}{
		{"beam covers the graph", 4096, false},
		{"beam starved", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := newTestMonitor(t, db, func(c *config.Config) { c.Quality.RecallSampleRate = 1 })
			for _, v := range vecs[n:] {
				opts := index.SearchOptions{K: 10, Ef: tt.ef}
				res, err := col.Search(context.Background(), v, opts)
				if err != nil {
					t.Fatal(err)
				}
				q.observeSearch(col, v, opts, res)
			}
			measured := q.m.recallSamples.WithLabelValues("synth", "measured")
			waitFor(t, "recall samples", func() bool { return metricValue(t, measured) == queries })
			got := metricValue(t, q.m.recall.WithLabelValues("synth"))
			if !tt.starve && got != 1 {
				t.Fatalf("recall gauge %v, want exactly 1", got)
			}
			if tt.starve && !(got < 1) {
				t.Fatalf("recall gauge %v, want < 1 with ef=1", got)
			}
			if c := seriesCount(q.m.recallHist); c != 1 {
				t.Fatalf("recall histogram series: %d", c)
			}
			sum := q.summary()["collections"].(map[string]any)["synth"].(map[string]any)["ann_recall"].(map[string]any)
			if sum["mean"].(float64) != got || sum["samples"].(int) != queries {
				t.Fatalf("summary ann_recall %v, gauge %v", sum, got)
			}
			t.Logf("ef=%d: recall@10 %.3f", tt.ef, got)
		})
	}
}

// TestRecallSamplerSkipsExact: searches that were exact already are not re-run.
func TestRecallSamplerSkipsExact(t *testing.T) {
	db := openTestDB(t)
	col, err := db.CreateCollection("c", index.CollectionConfig{Fingerprint: "c", Dims: 2})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := newTestMonitor(t, db, func(c *config.Config) { c.Quality.RecallSampleRate = 1 })
	q.observeSearch(col, []float32{1, 0}, index.SearchOptions{Exact: true}, nil)
	queries := q.m.queries.WithLabelValues("c")
	waitFor(t, "observation", func() bool { return metricValue(t, queries) == 1 })
	if n := seriesCount(q.m.recallSamples); n != 0 {
		t.Fatalf("exact search was sampled (%d series)", n)
	}
}

func judged(rel ...any) []feedbackResult {
	out := make([]feedbackResult, len(rel))
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
	// The collection must exist: the monitor's background pass forgets (and unexports) the windows
	// of collections that are gone.
	if _, err := db.CreateCollection("c", index.CollectionConfig{Fingerprint: "fp", Dims: 4}); err != nil {
		t.Fatal(err)
	}
	q, clk := newTestMonitor(t, db, func(c *config.Config) { c.Quality.FeedbackWindow = time.Hour })
	steps := []struct {
		at       time.Duration
		req      feedbackRequest
		events   int
		judged   int
		prec     float64
		clicked  int
		ctrValue float64
	}{
		// P@2 of T F = 1/2.
		{0, feedbackRequest{K: 2, Results: judged(true, false, true, false)}, 1, 1, 1.0 / 2, 0, 0},
		// P@2 of T T = 1, clicked.
		{10 * time.Minute, feedbackRequest{QueryID: "q2", K: 2, Results: judged(true, true), Clicked: []string{"r0"}}, 2, 2, (0.5 + 1) / 2, 1, 1.0 / 2},
		// A click without judgements.
		{20 * time.Minute, feedbackRequest{QueryID: "q3", K: 3, Clicked: []string{"r1"}}, 3, 2, (0.5 + 1) / 2, 2, 2.0 / 3},
		// The same query judged later: merged, P@3 over the judged F (skip) T T = 2/3.
		{30 * time.Minute, feedbackRequest{QueryID: "q3", K: 3, Results: judged(false, nil, true, true)}, 3, 3, (0.5 + 1 + 2.0/3) / 3, 2, 2.0 / 3},
		// 65 min: the first event (t=0) left the window. P@1 of F = 0.
		{65 * time.Minute, feedbackRequest{K: 1, Results: judged(false)}, 3, 3, (1 + 2.0/3 + 0) / 3, 2, 2.0 / 3},
		// 75 min: q2 (t=10m) left too; q3 is dated by its first report (20m), so it stays.
		{75 * time.Minute, feedbackRequest{K: 1, Results: judged(true)}, 3, 3, (2.0/3 + 0 + 1) / 3, 1, 1.0 / 3},
	}
	for i, st := range steps {
		clk.set(st.at)
		req := st.req
		sum := q.recordFeedback("c", &req)
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
}

func TestFeedbackPrecision(t *testing.T) {
	tests := []struct {
		results []feedbackResult
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
		got, ok := feedbackPrecision(tt.results, tt.k)
		if got != tt.want || ok != tt.ok {
			t.Errorf("case %d: got %v %v, want %v %v", i, got, ok, tt.want, tt.ok)
		}
	}
}

// TestDrift: low-score share and top-1 quantiles over the window, and the distance between the
// query centroid and the catalog centroid.
func TestDrift(t *testing.T) {
	db := openTestDB(t)
	col, err := db.CreateCollection("c", index.CollectionConfig{Fingerprint: "c", Dims: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := col.Upsert(context.Background(), index.Item{ID: "x", Vector: []float32{1, 0}}, index.Item{ID: "y", Vector: []float32{0, 1}}); err != nil {
		t.Fatal(err)
	}
	q, clk := newTestMonitor(t, db, func(c *config.Config) { c.Quality.MinScore = 0.3; c.Quality.FeedbackWindow = time.Hour })
	for _, s := range []float32{0.9, 0.2, 0.5, -1} {
		var res []index.Result
		if s >= 0 {
			res = []index.Result{{ID: "x", Score: s}}
		}
		q.observeSearch(col, []float32{3, 0}, index.SearchOptions{}, res)
	}
	queries := q.m.queries.WithLabelValues("c")
	waitFor(t, "observations", func() bool { return metricValue(t, queries) == 4 })
	q.refreshCentroids(context.Background())
	q.refreshGauges()
	if got := metricValue(t, q.m.lowShare.WithLabelValues("c")); got != 0.5 {
		t.Fatalf("low score share %v, want 2/4", got)
	}
	// Queries all point at (1,0); the catalog centroid is (1,1)/2: distance 1 - cos 45°.
	if got, want := metricValue(t, q.m.centroid.WithLabelValues("c")), 1-math.Sqrt(0.5); math.Abs(got-want) > 1e-9 {
		t.Fatalf("centroid distance %v, want %v", got, want)
	}
	d := q.summary()["collections"].(map[string]any)["c"].(map[string]any)["drift"].(map[string]any)
	// Scores .2 .5 .9 in bins of .05: the median lies in the .5 bin, interpolated to its middle.
	if d["queries"].(int) != 4 || math.Abs(d["top1_score_p50"].(float64)-0.525) > 1e-9 || math.Abs(d["top1_score_mean"].(float64)-(0.9+0.2+0.5)/3) > 1e-6 {
		t.Fatalf("drift summary %v", d)
	}
	// Two hours later the window is empty: the gauges are withdrawn.
	clk.set(2 * time.Hour)
	q.refreshGauges()
	if n := seriesCount(q.m.lowShare); n != 0 {
		t.Fatalf("low score share still exported after the window: %d series", n)
	}
}

// TestFeedbackEndpoint drives POST /v1/collections/{c}/feedback over HTTP.
func TestFeedbackEndpoint(t *testing.T) {
	ts := newTestServer(t, nil)
	tests := []struct {
		name, coll, body string
		status           int
		code             string
	}{
		{"judged and clicked", "default", `{"query_id":"q1","k":2,"results":[{"id":"a","relevant":true},{"id":"b","relevant":false}],"clicked":["a"]}`, 202, ""},
		{"click only", "default", `{"clicked":["a"]}`, 202, ""},
		{"empty", "default", `{}`, 400, "bad_request"},
		{"unknown field", "default", `{"clicks":["a"]}`, 400, "bad_request"},
		{"not JSON", "default", `relevant`, 400, "bad_request"},
		{"empty id", "default", `{"results":[{"id":""}]}`, 400, "bad_request"},
		{"negative k", "default", `{"k":-1,"clicked":["a"]}`, 400, "bad_request"},
		{"unknown collection", "nope", `{"clicked":["a"]}`, 404, "collection_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, "POST", ts.url+"/v1/collections/"+tt.coll+"/feedback", "application/json", strings.NewReader(tt.body))
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.code != "" {
				if got := r.errorCode(t); got != tt.code {
					t.Fatalf("code %q, want %q", got, tt.code)
				}
			}
		})
	}
	var st struct {
		Quality struct {
			Collections map[string]struct {
				Feedback feedbackSummary `json:"feedback"`
			} `json:"collections"`
		} `json:"quality"`
	}
	do(t, "GET", ts.url+"/v1/stats", "", nil).json(t, &st)
	fb := st.Quality.Collections["default"].Feedback
	if fb.Events != 2 || fb.Judged != 1 || fb.PrecisionAtK != 0.5 || fb.ClickThroughRate != 1 {
		t.Fatalf("stats quality feedback %+v", fb)
	}
	m := string(do(t, "GET", ts.url+"/metrics", "", nil).body)
	for _, want := range []string{`lookalike_quality_feedback_precision{collection="default"} 0.5`, `lookalike_quality_click_through_rate{collection="default"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestQualityLive: real searches feed drift and recall; labelled probes (held-out UKBench photos)
// score precision@3 = 1 against their group-mates.
func TestQualityLive(t *testing.T) {
	dir := ukbenchDir(t)
	manifest := filepath.Join(t.TempDir(), "ukprobes.csv")
	csv := "id,path,group\nukbench00003," + filepath.Join(dir, ukName(3)) + ",0\nukbench00007," + filepath.Join(dir, ukName(7)) + ",1\n"
	if err := os.WriteFile(manifest, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(c *config.Config) {
		c.Quality.RecallSampleRate = 1
		c.Quality.Probes.Manifests = []string{manifest}
		c.Quality.Probes.K = 3
	})
	for _, i := range []int{0, 1, 2, 4, 5, 6, 8, 9} {
		ts.addPhoto(t, ukName(i), fmt.Sprintf(`{"group":%d}`, i/4))
	}
	if r, _ := ts.searchImage(t, photo(t, ukName(10))); r.status != http.StatusOK {
		t.Fatalf("search: %d %s", r.status, r.body)
	}
	q := ts.quality
	waitFor(t, "recall sample", func() bool {
		return metricValue(t, q.m.recallSamples.WithLabelValues("default", "measured")) == 1
	})
	q.loadProbes(context.Background())
	q.runProbes(context.Background())
	var st struct {
		Quality struct {
			Collections map[string]map[string]map[string]any `json:"collections"`
			Probes      map[string]map[string]any            `json:"probes"`
		} `json:"quality"`
	}
	do(t, "GET", ts.url+"/v1/stats", "", nil).json(t, &st)
	p := st.Quality.Probes["ukprobes"]
	if p["precision_at_k"] != 1.0 || p["probes"] != 2.0 {
		t.Fatalf("probe set: %v", p)
	}
	col := st.Quality.Collections["default"]
	if col["ann_recall"]["mean"] != 1.0 || col["drift"]["queries"] != 1.0 {
		t.Fatalf("collection quality: %v", col)
	}
	m := string(do(t, "GET", ts.url+"/metrics", "", nil).body)
	for _, want := range []string{`lookalike_quality_probe_precision{set="ukprobes"} 1`, `lookalike_quality_top1_score_count{collection="default"} 1`, `lookalike_quality_ann_recall{collection="default"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestQualityConfigsNameRealMetrics: every lookalike_quality_* series the example alert rules and
// the Grafana dashboard query is one this package registers.
func TestQualityConfigsNameRealMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newQualityMetrics(reg)
	// Touch every vector so Gather reports it.
	m.recall.WithLabelValues("c")
	m.recallHist.WithLabelValues("c").Observe(1)
	m.recallSamples.WithLabelValues("c", "measured")
	m.dropped.WithLabelValues("observe")
	m.precision.WithLabelValues("c")
	m.ctr.WithLabelValues("c")
	m.feedback.WithLabelValues("c", "judged")
	m.probePrecision.WithLabelValues("s")
	m.probeRuns.WithLabelValues("s")
	m.probeLastRun.WithLabelValues("s")
	m.queries.WithLabelValues("c")
	m.top1.WithLabelValues("c").Observe(1)
	m.lowScore.WithLabelValues("c")
	m.lowShare.WithLabelValues("c")
	m.centroid.WithLabelValues("c")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range families {
		known[f.GetName()] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_count", "_sum"} {
				known[f.GetName()+s] = true
			}
		}
	}
	name := regexp.MustCompile(`lookalike_quality_[a-z0-9_]+`)
	for _, file := range []string{"../configs/prometheus-alerts.yaml", "../configs/grafana-dashboard.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		used := name.FindAllString(string(b), -1)
		if len(used) < 5 {
			t.Fatalf("%s names only %d quality metrics", file, len(used))
		}
		for _, u := range used {
			if !known[u] {
				t.Errorf("%s uses %s, which the server does not export", file, u)
			}
		}
	}
}

// FuzzFeedbackRequest: the feedback parser never panics, and what it accepts is within the limits
// and scorable.
func FuzzFeedbackRequest(f *testing.F) {
	for _, s := range []string{
		`{"query_id":"q1","k":2,"results":[{"id":"a","relevant":true},{"id":"b","relevant":false}],"clicked":["a"]}`,
		`{"clicked":["a"]}`, `{"results":[{"id":"a"}]}`, `{}`, `[]`, `{"k":-1}`, `{"results":[{"id":""}]}`,
		`{"results":[{"id":"a","relevant":null}],"k":1000000}`,
	} {
		f.Add([]byte(s))
	}
	cfg := config.Default()
	q := &qualityMonitor{cfg: cfg}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := q.parseFeedback(body)
		if err != nil {
			return
		}
		if req.K < 1 || req.K > cfg.Limits.MaxK || len(req.Results) > cfg.Limits.MaxK || len(req.Results)+len(req.Clicked) == 0 {
			t.Fatalf("accepted out-of-limits request %+v", req)
		}
		if p, ok := feedbackPrecision(req.Results, req.K); ok && (p < 0 || p > 1) {
			t.Fatalf("precision %v", p)
		}
	})
}
