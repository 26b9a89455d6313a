package api

import (
	"math"
	"sync"
	"time"
)

// statsRecorder keeps a short history (server.stats_window) of query rate, latency percentiles and
// rejections in fixed time buckets, for /v1/stats and the UI's status page. Prometheus holds the
// long-term truth; this is the same numbers, summarised for a person without a Prometheus server.
type statsRecorder struct {
	mu        sync.Mutex
	bucketDur time.Duration
	buckets   []statBucket // ring, indexed by (unix / bucketDur) % len
	requests  int64
	searches  int64
	rejected  map[string]int64
	now       func() time.Time
}

const (
	latencyBins   = 72
	latencyBase   = 0.05 // ms, upper bound of bin 0
	latencyFactor = 1.2
)

// statBucket keeps image searches and stored-vector lookups (similar, by id, by vector) apart:
// they differ by two orders of magnitude, and one mixed percentile would describe neither.
type statBucket struct {
	start    int64 // unix seconds of the bucket start; stale buckets are reset on reuse
	queries  int
	rejected int
	hist     [latencyBins]uint32 // image searches
	lookups  [latencyBins]uint32 // similar / by id / by vector
}

func newStatsRecorder(window time.Duration) *statsRecorder {
	dur := 10 * time.Second
	n := int(window / dur)
	if n < 6 {
		n = 6
	}
	return &statsRecorder{bucketDur: dur, buckets: make([]statBucket, n), rejected: map[string]int64{}, now: time.Now}
}

func (r *statsRecorder) bucket(t time.Time) *statBucket {
	secs := int64(r.bucketDur / time.Second)
	start := t.Unix() / secs * secs
	b := &r.buckets[(t.Unix()/secs)%int64(len(r.buckets))]
	if b.start != start {
		*b = statBucket{start: start}
	}
	return b
}

func (r *statsRecorder) request() {
	r.mu.Lock()
	r.requests++
	r.mu.Unlock()
}

// query records one answered search and its latency; image says whether it embedded a photo.
func (r *statsRecorder) query(image bool, latency time.Duration) {
	msec := float64(latency) / float64(time.Millisecond)
	bin := 0
	if msec > latencyBase {
		bin = int(math.Ceil(math.Log(msec/latencyBase) / math.Log(latencyFactor)))
	}
	bin = min(max(bin, 0), latencyBins-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.searches++
	b := r.bucket(r.now())
	b.queries++
	if image {
		b.hist[bin]++
	} else {
		b.lookups[bin]++
	}
}

func (r *statsRecorder) reject(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejected[reason]++
	r.bucket(r.now()).rejected++
}

// statsPoint is one time bucket: qps counts every search; the percentiles are of image searches,
// the similar_* ones of stored-vector lookups.
type statsPoint struct {
	T          int64   `json:"t"`
	QPS        float64 `json:"qps"`
	P50        float64 `json:"p50_ms"`
	P95        float64 `json:"p95_ms"`
	P99        float64 `json:"p99_ms"`
	SimilarP50 float64 `json:"similar_p50_ms"`
	SimilarP95 float64 `json:"similar_p95_ms"`
	SimilarP99 float64 `json:"similar_p99_ms"`
	Rejected   int     `json:"rejected"`
}

type statsTotals struct {
	Requests         int64            `json:"requests"`
	Searches         int64            `json:"searches"`
	RejectedByReason map[string]int64 `json:"rejected_by_reason"`
	P50              float64          `json:"p50_ms"`
	P95              float64          `json:"p95_ms"`
	P99              float64          `json:"p99_ms"`
	SimilarP50       float64          `json:"similar_p50_ms"`
	SimilarP95       float64          `json:"similar_p95_ms"`
	SimilarP99       float64          `json:"similar_p99_ms"`
}

// snapshot returns one point per bucket of the window, oldest first, with empty buckets as zeros,
// and totals whose percentiles cover the whole window.
func (r *statsRecorder) snapshot() ([]statsPoint, statsTotals) {
	r.mu.Lock()
	defer r.mu.Unlock()
	secs := int64(r.bucketDur / time.Second)
	nowStart := r.now().Unix() / secs * secs
	points := make([]statsPoint, 0, len(r.buckets))
	var all, allLookups [latencyBins]uint32
	for i := len(r.buckets) - 1; i >= 0; i-- {
		start := nowStart - int64(i)*secs
		p := statsPoint{T: start}
		b := &r.buckets[(start/secs)%int64(len(r.buckets))]
		if b.start == start {
			p.QPS = float64(b.queries) / float64(secs)
			p.Rejected = b.rejected
			p.P50, p.P95, p.P99 = percentile(&b.hist, .50), percentile(&b.hist, .95), percentile(&b.hist, .99)
			p.SimilarP50, p.SimilarP95, p.SimilarP99 = percentile(&b.lookups, .50), percentile(&b.lookups, .95), percentile(&b.lookups, .99)
			for j := range all {
				all[j] += b.hist[j]
				allLookups[j] += b.lookups[j]
			}
		}
		points = append(points, p)
	}
	tot := statsTotals{Requests: r.requests, Searches: r.searches, RejectedByReason: make(map[string]int64, len(r.rejected))}
	for k, v := range r.rejected {
		tot.RejectedByReason[k] = v
	}
	tot.P50, tot.P95, tot.P99 = percentile(&all, .50), percentile(&all, .95), percentile(&all, .99)
	tot.SimilarP50, tot.SimilarP95, tot.SimilarP99 = percentile(&allLookups, .50), percentile(&allLookups, .95), percentile(&allLookups, .99)
	return points, tot
}

// percentile returns the upper bound (ms) of the bin holding quantile q, 0 for an empty histogram.
func percentile(h *[latencyBins]uint32, q float64) float64 {
	var n uint64
	for _, c := range h {
		n += uint64(c)
	}
	if n == 0 {
		return 0
	}
	target := uint64(math.Ceil(q * float64(n)))
	var cum uint64
	for i, c := range h {
		cum += uint64(c)
		if cum >= target {
			return math.Round(latencyBase*math.Pow(latencyFactor, float64(i))*100) / 100
		}
	}
	return latencyBase * math.Pow(latencyFactor, latencyBins-1)
}
