package api

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are bound once at construction and registered on the registry the caller injects, so
// tests can run several servers in one process.
type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	inflight      prometheus.Gauge
	stage         *prometheus.HistogramVec
	queueDepth    prometheus.Gauge
	admission     *prometheus.CounterVec
	batchSize     prometheus.Histogram
	rejected      *prometheus.CounterVec
	indexItems    *prometheus.GaugeVec
	indexLevels   *prometheus.GaugeVec
	modelInfo     *prometheus.GaugeVec
	ingested      *prometheus.CounterVec
	nearDuplicate prometheus.Counter
}

// latencyBuckets span 0.25 ms (a similar-by-id lookup) to 10 s (a large batch upload).
var latencyBuckets = []float64{.00025, .0005, .001, .002, .004, .008, .016, .032, .064, .128, .256, .512, 1, 2, 5, 10}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "lookalike", Name: "http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "lookalike", Name: "http_request_duration_seconds",
			Help: "HTTP request latency by route pattern, method and status class.", Buckets: latencyBuckets,
		}, []string{"route", "method", "status"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "lookalike", Name: "http_requests_in_flight", Help: "HTTP requests being served.",
		}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "lookalike", Name: "stage_duration_seconds",
			Help:    "Time per query stage: decode, preprocess, inference, search, total.",
			Buckets: latencyBuckets,
		}, []string{"stage"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "lookalike", Name: "embed_queue_depth", Help: "Image requests waiting for an inference slot.",
		}),
		admission: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "lookalike", Name: "embed_admission_total",
			Help: "Admission decisions for image requests: admitted, rejected_full (429), rejected_timeout (503).",
		}, []string{"outcome"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "lookalike", Name: "embed_batch_size", Help: "Images per embedding call.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "lookalike", Name: "rejected_requests_total",
			Help: "Requests answered with an error, by error code (e.g. not_an_image, image_too_large).",
		}, []string{"reason"}),
		indexItems: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "lookalike", Name: "index_items", Help: "Items per collection.",
		}, []string{"collection"}),
		indexLevels: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "lookalike", Name: "index_graph_levels", Help: "HNSW graph levels per collection.",
		}, []string{"collection"}),
		modelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "lookalike", Name: "model_info", Help: "The embedding model in use (always 1).",
		}, []string{"model", "fingerprint", "device", "dims"}),
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "lookalike", Name: "items_ingested_total", Help: "Items written, by outcome (stored, failed).",
		}, []string{"outcome"}),
		nearDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "lookalike", Name: "near_duplicates_detected_total", Help: "Ingested items that were near-duplicates of an existing item.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inflight, m.stage, m.queueDepth, m.admission, m.batchSize,
		m.rejected, m.indexItems, m.indexLevels, m.modelInfo, m.ingested, m.nearDuplicate)
	return m
}

// seededRoutes are the routes whose request series exist before their first request: the RED
// panels and alert rules in configs/ chart them, and on a fresh server their rates read 0
// instead of "no data". Only routes the router has are seeded (seedRequests).
var seededRoutes = []struct{ method, path string }{
	{"POST", "/v1/collections/:c/search"},
	{"GET", "/v1/collections/:c/items/:id/similar"},
	{"POST", "/v1/collections/:c/items"},
	{"POST", `/v1/collections/:c/items\:batch`},
}

// seedRequests creates the 200 series of the seeded routes among registered ("METHOD path").
func (m *metrics) seedRequests(registered map[string]bool) {
	for _, r := range seededRoutes {
		if registered[r.method+" "+r.path] {
			m.requests.WithLabelValues(r.path, r.method, "200")
			m.duration.WithLabelValues(r.path, r.method, "2xx")
		}
	}
	for _, o := range []string{"admitted", "rejected_full", "rejected_timeout"} {
		m.admission.WithLabelValues(o)
	}
}
