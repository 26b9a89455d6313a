package quality

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// TestQualityConfigsNameRealMetrics: every lookalike_quality_* series the example alert rules and
// the Grafana dashboard query is one this package registers.
func TestQualityConfigsNameRealMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
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
	if len(families) != 15 {
		t.Fatalf("%d metric families registered, want 15", len(families))
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

// TestSeriesExistBeforeData: every series of every collection, and of every configured probe set,
// exists from the monitor's construction on, before any search, feedback or probe run: a fresh
// dashboard lists them and LookalikeProbesStale can fire for a set that never runs. Gauges are
// NaN until measured, never a 0 an alert would read as a collapse. A collection created later is
// seeded by the maintenance pass, a dropped one withdrawn.
func TestSeriesExistBeforeData(t *testing.T) {
	db := openTestDB(t)
	if _, err := db.CreateCollection("c", index.CollectionConfig{Fingerprint: "c", Dims: 2}); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Quality.Probes.Manifests = []string{filepath.Join(t.TempDir(), "shoes.csv")} // not there yet: never runs
	reg := prometheus.NewRegistry()
	before := time.Now().Unix()
	q, err := New(cfg, vectorEmbedder{}, db, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 15 {
		t.Errorf("%d metric families before any data, want all 15", len(families))
	}
	for _, g := range []*prometheus.GaugeVec{q.m.recall, q.m.precision, q.m.ctr, q.m.lowShare, q.m.centroid} {
		if v := metricValue(t, g.WithLabelValues("c")); !math.IsNaN(v) {
			t.Errorf("an unmeasured gauge reads %v, want NaN", v)
		}
	}
	if v := metricValue(t, q.m.probePrecision); !math.IsNaN(v) {
		t.Errorf("probe precision before a run: %v, want NaN", v)
	}
	if v := metricValue(t, q.m.probeLastRun); v < float64(before) {
		t.Errorf("probe last run %v: want the monitor's start (>= %d) so staleness counts from there", v, before)
	}
	if n := seriesCount(q.m.feedback); n != len(feedbackKinds) {
		t.Errorf("feedback counters: %d series, want one per kind", n)
	}

	if _, err := db.CreateCollection("d", index.CollectionConfig{Fingerprint: "c", Dims: 2}); err != nil {
		t.Fatal(err)
	}
	if err := db.DropCollection("c"); err != nil {
		t.Fatal(err)
	}
	q.refreshGauges()
	families, _ = reg.Gather()
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "collection" && l.GetValue() == "c" {
					t.Errorf("%s still exports the dropped collection", f.GetName())
				}
			}
		}
	}
	if n := seriesCount(q.m.recallSamples); n != len(recallOutcomes) {
		t.Errorf("collection d: %d recall sample series, want %d", n, len(recallOutcomes))
	}
}
