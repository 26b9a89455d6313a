package quality

import (
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the monitor's Prometheus series (lookalike_quality_*; docs/quality.md lists them and
// configs/ holds alert rules and a dashboard that query them).
type metrics struct {
	recall         *prometheus.GaugeVec
	recallHist     *prometheus.HistogramVec
	recallSamples  *prometheus.CounterVec
	dropped        *prometheus.CounterVec
	precision      *prometheus.GaugeVec
	ctr            *prometheus.GaugeVec
	feedback       *prometheus.CounterVec
	probePrecision *prometheus.GaugeVec
	probeRuns      *prometheus.CounterVec
	probeLastRun   *prometheus.GaugeVec
	queries        *prometheus.CounterVec
	top1           *prometheus.HistogramVec
	lowScore       *prometheus.CounterVec
	lowShare       *prometheus.GaugeVec
	centroid       *prometheus.GaugeVec
}

// newMetrics builds the series and registers them on reg; with a nil reg they are kept but not
// exported.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "lookalike", "quality"
	col := []string{"collection"}
	gauge := func(name, help string, labels []string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help, Buckets: buckets}, col)
	}
	m := &metrics{
		recall: gauge("ann_recall",
			"Mean recall@k of HNSW answers against exact search over the latest 100 sampled queries.", col),
		recallHist: histogram("ann_recall_ratio",
			"Recall@k of each sampled HNSW answer against exact search.", []float64{.5, .7, .8, .9, .95, .98, .99, 1}),
		recallSamples: counter("recall_samples_total",
			"Sampled queries re-run with exact search, by outcome (measured, error).", []string{"collection", "outcome"}),
		dropped: counter("observations_dropped_total",
			"Search observations dropped because a quality queue was full (observe, recall).", []string{"queue"}),
		precision: gauge("feedback_precision",
			"Mean precision@k of judged feedback over quality.feedback_window.", col),
		ctr: gauge("click_through_rate",
			"Share of feedback events (result lists shown) with at least one click, over quality.feedback_window.", col),
		feedback: counter("feedback_events_total",
			"Feedback received, by kind (impression, click, judged).", []string{"collection", "kind"}),
		probePrecision: gauge("probe_precision",
			"Mean precision@k of the labelled probe set's latest run.", []string{"set"}),
		probeRuns: counter("probe_runs_total",
			"Runs of each labelled probe set.", []string{"set"}),
		probeLastRun: gauge("probe_last_run_timestamp_seconds",
			"Unix time of each probe set's latest run (the monitor's start until the first run, so staleness counts from there).", []string{"set"}),
		queries: counter("queries_observed_total",
			"Answered searches seen by the quality monitor.", col),
		top1: histogram("top1_score",
			"Cosine similarity of the best result of each search.", []float64{.1, .2, .3, .4, .5, .6, .7, .8, .9, .95, 1}),
		lowScore: counter("low_score_queries_total",
			"Searches whose best score was below quality.min_score (or had no result).", col),
		lowShare: gauge("low_score_share",
			"Share of searches over quality.feedback_window whose best score was below quality.min_score.", col),
		centroid: gauge("query_centroid_distance",
			"Cosine distance between the mean query embedding over the window and the catalog's mean embedding.", col),
	}
	for _, queue := range []string{"observe", "recall"} {
		m.dropped.WithLabelValues(queue)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.recall, m.recallHist, m.recallSamples, m.dropped, m.precision, m.ctr, m.feedback,
		m.probePrecision, m.probeRuns, m.probeLastRun, m.queries, m.top1, m.lowScore, m.lowShare, m.centroid} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("quality: register metrics: %w", err)
		}
	}
	return m, nil
}

// Label values the monitor writes, so that seeding creates exactly the series it later counts.
var (
	recallOutcomes = []string{"measured", "error"}
	feedbackKinds  = []string{"impression", "click", "judged"}
)

// seedCollection makes every series of a collection exist before its first data point: a fresh
// dashboard lists the collection, and alert rules over increase() have a zero to start from.
// Gauges start at NaN ("not measured yet"), never 0, so no threshold alert fires on a value nobody
// measured.
func (m *metrics) seedCollection(name string) {
	for _, g := range []*prometheus.GaugeVec{m.recall, m.precision, m.ctr, m.lowShare, m.centroid} {
		g.WithLabelValues(name).Set(math.NaN())
	}
	m.recallHist.WithLabelValues(name)
	m.top1.WithLabelValues(name)
	m.queries.WithLabelValues(name)
	m.lowScore.WithLabelValues(name)
	for _, o := range recallOutcomes {
		m.recallSamples.WithLabelValues(name, o)
	}
	for _, k := range feedbackKinds {
		m.feedback.WithLabelValues(name, k)
	}
}

// forgetCollection withdraws every series of a dropped collection.
func (m *metrics) forgetCollection(name string) {
	for _, v := range []interface{ DeleteLabelValues(...string) bool }{m.recall, m.precision, m.ctr, m.lowShare, m.centroid,
		m.recallHist, m.top1, m.queries, m.lowScore} {
		v.DeleteLabelValues(name)
	}
	m.recallSamples.DeletePartialMatch(prometheus.Labels{"collection": name})
	m.feedback.DeletePartialMatch(prometheus.Labels{"collection": name})
}

// seedProbeSet makes a configured probe set's series exist before its first run. Its last run is
// the monitor's start, so a set that never runs goes stale (LookalikeProbesStale) instead of being
// invisible.
func (m *metrics) seedProbeSet(name string, start time.Time) {
	m.probePrecision.WithLabelValues(name).Set(math.NaN())
	m.probeRuns.WithLabelValues(name)
	m.probeLastRun.WithLabelValues(name).Set(float64(start.Unix()))
}
