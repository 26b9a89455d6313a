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
	// Per arm of a rebuild (generation "live": the alias's generation; "shadow": any other, such
	// as the canary's): the same telemetry, two label values whatever the generation numbers.
	armLatency  *prometheus.HistogramVec
	armTopScore *prometheus.HistogramVec
	aliasGen    *prometheus.GaugeVec
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
	m.armLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "lookalike", Name: "search_duration_seconds",
		Help:    "Search and similar latency by arm: generation live (the alias's generation) or shadow (another one, e.g. the canary).",
		Buckets: latencyBuckets,
	}, []string{"generation"})
	m.armTopScore = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "lookalike", Name: "search_top_score",
		Help:    "Cosine of the best result of searches and similar, by arm (generation live or shadow).",
		Buckets: prometheus.LinearBuckets(0.1, 0.1, 10),
	}, []string{"generation"})
	m.aliasGen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "lookalike", Name: "alias_generation",
		Help: "The generation each collection's alias names (1 before any switch).",
	}, []string{"alias"})
	for _, arm := range []string{armLive, armShadow} {
		m.armLatency.WithLabelValues(arm)
		m.armTopScore.WithLabelValues(arm)
	}
	reg.MustRegister(m.armLatency, m.armTopScore, m.aliasGen)
	reg.MustRegister(m.requests, m.duration, m.inflight, m.stage, m.queueDepth, m.admission, m.batchSize,
		m.rejected, m.indexItems, m.indexLevels, m.modelInfo, m.ingested, m.nearDuplicate)
	return m
}

// The values of the generation label.
const (
	armLive   = "live"
	armShadow = "shadow"
)

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
