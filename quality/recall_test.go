package quality

import (
	"context"
	"fmt"
	"testing"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/bench/synth"
	"github.com/lookalike/lookalike/internal/config"
)

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
				q.Observe(col, v, opts, res)
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
			sum := q.Summary().Collections["synth"].Recall
			if sum == nil || sum.Mean != got || sum.Samples != queries || sum.WindowSamples != queries {
				t.Fatalf("summary recall %+v, gauge %v", sum, got)
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
	q.Observe(col, []float32{1, 0}, index.SearchOptions{Exact: true}, nil)
	queries := q.m.queries.WithLabelValues("c")
	waitFor(t, "observation", func() bool { return metricValue(t, queries) == 1 })
	for _, o := range recallOutcomes {
		if n := metricValue(t, q.m.recallSamples.WithLabelValues("c", o)); n != 0 {
			t.Fatalf("exact search was sampled (%s %v)", o, n)
		}
	}
}

// TestRecallRing: the gauge is the mean of the latest recallRing samples only.
func TestRecallRing(t *testing.T) {
	q, err := New(config.Default(), nil, openTestDB(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mean float64
	for i := range recallRing + 20 {
		rec := 0.0
		if i >= 20 { // the 20 zeros are pushed out of the ring by the 100 ones
			rec = 1
		}
		if i == recallRing+19 {
			rec = 0.5
		}
		mean = q.addRecall("c", rec)
	}
	if want := (99 + 0.5) / 100; mean != want {
		t.Fatalf("ring mean %v, want %v", mean, want)
	}
}

func TestOverlap(t *testing.T) {
	tests := []struct {
		name          string
		approx, exact []string
		k             int
		want          float64
	}{
		{"two of three", []string{"a", "x", "c"}, []string{"a", "b", "c"}, 3, 2.0 / 3},
		{"order does not matter", []string{"c", "b", "a"}, []string{"a", "b", "c"}, 3, 1},
		{"truncated to k", []string{"a", "b", "z"}, []string{"a", "b", "c"}, 2, 1},
		{"approx beyond k does not count", []string{"x", "y", "a"}, []string{"a", "b"}, 2, 0},
		{"short exact answer", []string{"a", "b", "c"}, []string{"a"}, 10, 1},
		{"empty approx", nil, []string{"a", "b"}, 10, 0},
		{"nothing exact", nil, nil, 10, 1},
	}
	for _, tt := range tests {
		if got := Overlap(tt.approx, tt.exact, tt.k); got != tt.want {
			t.Errorf("%s: Overlap = %v, want %v", tt.name, got, tt.want)
		}
	}
}
