package quality

import (
	"os"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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
