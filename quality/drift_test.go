package quality

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

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
		q.Observe(col, []float32{3, 0}, index.SearchOptions{}, res)
	}
	queries := q.m.queries.WithLabelValues("c")
	waitFor(t, "observations", func() bool { return metricValue(t, queries) == 4 })
	q.refreshCentroids(context.Background())
	q.refreshGauges()
	if got := metricValue(t, q.m.lowShare.WithLabelValues("c")); got != 0.5 {
		t.Fatalf("low score share %v, want 2/4", got)
	}
	// Queries all point at (1,0); the catalog centroid is (1,1)/2: distance 1 - cos 45°.
	want := 1 - math.Sqrt(0.5)
	if got := metricValue(t, q.m.centroid.WithLabelValues("c")); math.Abs(got-want) > 1e-9 {
		t.Fatalf("centroid distance %v, want %v", got, want)
	}
	d := q.Summary().Collections["c"].Drift
	// Scores .2 .5 .9 in bins of .05: the median lies in the .5 bin, interpolated to its middle.
	if d == nil || d.Queries != 4 || d.MinScore != 0.3 || math.Abs(d.Top1P50-0.525) > 1e-9 || math.Abs(d.Top1Mean-(0.9+0.2+0.5)/3) > 1e-6 ||
		!d.HasCentroid || math.Abs(d.CentroidDistance-want) > 1e-9 {
		t.Fatalf("drift summary %+v", d)
	}
	// Two hours later the window is empty: the gauges say "not measured" (NaN), never 0.
	clk.set(2 * time.Hour)
	q.refreshGauges()
	if n, v := seriesCount(q.m.lowShare), metricValue(t, q.m.lowShare); n != 1 || !math.IsNaN(v) {
		t.Fatalf("low score share after the window: %d series, value %v; want one NaN", n, v)
	}
	if d := q.Summary().Collections["c"].Drift; d != nil {
		t.Fatalf("drift summary after the window: %+v", d)
	}
}

// TestDroppedCollectionForgotten: the maintenance pass forgets a dropped collection's windows and
// withdraws its series.
func TestDroppedCollectionForgotten(t *testing.T) {
	db := openTestDB(t)
	col, err := db.CreateCollection("c", index.CollectionConfig{Fingerprint: "c", Dims: 2})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := newTestMonitor(t, db, nil)
	q.Observe(col, []float32{1, 0}, index.SearchOptions{}, []index.Result{{ID: "x", Score: 0.1}})
	waitFor(t, "observation", func() bool { return metricValue(t, q.m.queries.WithLabelValues("c")) == 1 })
	q.refreshGauges()
	if n := seriesCount(q.m.lowShare); n != 1 {
		t.Fatalf("low score share series %d, want 1", n)
	}
	if err := db.DropCollection("c"); err != nil {
		t.Fatal(err)
	}
	q.refreshGauges()
	if n := seriesCount(q.m.lowShare); n != 0 || !q.Summary().Empty() {
		t.Fatalf("dropped collection still reported (%d series, summary %+v)", n, q.Summary())
	}
}

func TestBinQuantile(t *testing.T) {
	var bins [scoreBins]int
	bins[4], bins[10], bins[18] = 1, 2, 1 // scores in [.2,.25), [.5,.55) twice, [.9,.95)
	tests := []struct {
		p, want float64
	}{
		{0.25, 0.25}, // the whole first bin: its upper edge
		{0.5, 0.525}, // half of the .5 bin's two
		{0.75, 0.55}, // all of the .5 bin
		{0.9, 0.93},  // 0.6 of the .9 bin
		{0, 0.2},     // lower edge of the first non-empty bin
		{1, 0.95},    // upper edge of the last
	}
	for _, tt := range tests {
		if got := binQuantile(bins, 4, tt.p); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("p%v: %v, want %v", tt.p, got, tt.want)
		}
	}
}
