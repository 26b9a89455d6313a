package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/internal/ingest"
)

// qualityMonitor measures retrieval quality live (docs/quality.md):
//
//   - ANN recall: a sampled share (quality.recall_sample_rate) of answered searches is re-run with
//     exact search in the background; recall@k of the HNSW answer is a gauge and a histogram.
//   - Feedback: POST /v1/collections/{c}/feedback records judgements and clicks; precision@k and
//     click-through rate over quality.feedback_window.
//   - Probes: held-out photos with a known group are searched periodically and after index changes;
//     precision@k per probe set.
//   - Drift: top-1 scores, the share below quality.min_score and the cosine distance between the
//     centroid of recent queries and the catalog's, over the same window.
//
// The request path only copies the query and does a non-blocking send (observeSearch); everything
// else runs in goroutines started by start and stopped with the server's background context.
type qualityMonitor struct {
	cfg    config.Config
	db     *index.DB
	eng    Embedder
	log    *slog.Logger
	m      *qualityMetrics
	probes probeConfig
	window time.Duration
	now    func() time.Time

	obs     chan observation // every answered search (drift; sampled ones go on to recall)
	samples chan observation // recall jobs

	mu        sync.Mutex
	cols      map[string]*colQuality
	probeSets map[string]*probeSet
}

// observation is one answered search, copied off the request path.
type observation struct {
	col    *index.Collection
	query  []float32
	opts   index.SearchOptions
	ids    []string // the HNSW answer, only for samples
	top1   float32
	hasTop bool
	sample bool
}

const (
	obsQueue       = 1024
	sampleQueue    = 64
	recallRing     = 100 // the recall gauge is the mean of this many latest samples
	maxFeedback    = 100_000
	driftBuckets   = 60
	scoreBins      = 20 // top-1 score histogram over [0,1] for windowed quantiles
	centroidSample = 1000
	centroidEvery  = 10 * time.Minute
	maintainEvery  = 10 * time.Second
	changeEvery    = 30 * time.Second
)

// Embedder is also what probes need; newQualityMonitor takes the server's engine.
func newQualityMonitor(cfg config.Config, eng Embedder, db *index.DB, reg prometheus.Registerer, log *slog.Logger) *qualityMonitor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := cfg.Quality.FeedbackWindow
	if w <= 0 {
		w = time.Hour
	}
	q := &qualityMonitor{
		cfg: cfg, db: db, eng: eng, log: log, window: w, now: time.Now,
		m:         newQualityMetrics(reg),
		probes:    probeConfigFrom(cfg),
		obs:       make(chan observation, obsQueue),
		samples:   make(chan observation, sampleQueue),
		cols:      map[string]*colQuality{},
		probeSets: map[string]*probeSet{},
	}
	return q
}

// start launches background work; it stops when ctx is done and marks wg done.
func (q *qualityMonitor) start(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(3)
	go func() { defer wg.Done(); q.observeLoop(ctx) }()
	go func() { defer wg.Done(); q.recallLoop(ctx) }()
	go func() { defer wg.Done(); q.maintainLoop(ctx) }()
}

// observeSearch is called after every answered search, on the request path: it must not block.
func (q *qualityMonitor) observeSearch(col *index.Collection, query []float32, opts index.SearchOptions, results []index.Result) {
	o := observation{col: col, query: slices.Clone(query), opts: opts}
	if len(results) > 0 {
		o.top1, o.hasTop = results[0].Score, true
	}
	if r := q.cfg.Quality.RecallSampleRate; !opts.Exact && r > 0 && rand.Float64() < r {
		o.sample = true
		// ExcludeIDs may point into fiber's request buffers, which are reused after the handler.
		o.opts.ExcludeIDs = make([]string, len(opts.ExcludeIDs))
		for i, id := range opts.ExcludeIDs {
			o.opts.ExcludeIDs[i] = strings.Clone(id)
		}
		o.ids = make([]string, len(results))
		for i, r := range results {
			o.ids[i] = r.ID
		}
	}
	select {
	case q.obs <- o:
	default:
		q.m.dropped.WithLabelValues("observe").Inc()
	}
}

func (q *qualityMonitor) observeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-q.obs:
			q.recordDrift(o)
			if o.sample {
				select {
				case q.samples <- o:
				default:
					q.m.dropped.WithLabelValues("recall").Inc()
				}
			}
		}
	}
}

func (q *qualityMonitor) recallLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-q.samples:
			q.measureRecall(ctx, o)
		}
	}
}

// measureRecall re-runs a sampled search exactly. Writes between the two searches can move the
// exact answer; at sampling rates of 1% that noise is negligible next to real recall loss.
func (q *qualityMonitor) measureRecall(ctx context.Context, o observation) {
	name := o.col.Name()
	opts := o.opts
	opts.Exact = true
	exact, err := o.col.Search(ctx, o.query, opts)
	if err != nil {
		if ctx.Err() == nil {
			q.log.Debug("quality: exact re-run failed", "collection", name, "err", err)
			q.m.recallSamples.WithLabelValues(name, "error").Inc()
		}
		return
	}
	rec := recallAt(o.ids, exact)
	q.m.recallSamples.WithLabelValues(name, "measured").Inc()
	q.m.recallHist.WithLabelValues(name).Observe(rec)
	q.mu.Lock()
	cq := q.colLocked(name)
	cq.recall[cq.recallN%recallRing] = rec
	cq.recallN++
	mean := cq.recallMean()
	q.mu.Unlock()
	q.m.recall.WithLabelValues(name).Set(mean)
}

// recallAt is |approx ∩ exact| / |exact|; an empty exact answer gives 1.
func recallAt(approx []string, exact []index.Result) float64 {
	if len(exact) == 0 {
		return 1
	}
	set := make(map[string]bool, len(approx))
	for _, id := range approx {
		set[id] = true
	}
	hit := 0
	for _, r := range exact {
		if set[r.ID] {
			hit++
		}
	}
	return float64(hit) / float64(len(exact))
}

// colQuality is one collection's windows. Guarded by qualityMonitor.mu.
type colQuality struct {
	recall  [recallRing]float64
	recallN int

	feedback []*feedbackEvent
	byQuery  map[string]*feedbackEvent

	drift        [driftBuckets]driftBucket
	catalog      []float64 // centroid of a sample of the catalog
	catalogCount int       // collection size when it was computed
	catalogAt    time.Time
	lastCount    int
}

func (c *colQuality) recallMean() float64 {
	n := min(c.recallN, recallRing)
	if n == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range c.recall[:n] {
		s += v
	}
	return s / float64(n)
}

func (q *qualityMonitor) colLocked(name string) *colQuality {
	c := q.cols[name]
	if c == nil {
		c = &colQuality{byQuery: map[string]*feedbackEvent{}, lastCount: -1}
		q.cols[name] = c
	}
	return c
}

// ---- drift ----

// driftBucket aggregates the queries of one slice (window/driftBuckets) of time.
type driftBucket struct {
	start   time.Time
	n, low  int
	scored  int
	sumTop1 float64
	bins    [scoreBins]int
	sumVec  []float64
}

func (q *qualityMonitor) bucketDur() time.Duration {
	return max(q.window/driftBuckets, time.Second)
}

func (q *qualityMonitor) recordDrift(o observation) {
	name := o.col.Name()
	q.m.queries.WithLabelValues(name).Inc()
	if o.hasTop {
		q.m.top1.WithLabelValues(name).Observe(float64(o.top1))
	}
	low := !o.hasTop || float64(o.top1) < q.cfg.Quality.MinScore
	if low {
		q.m.lowScore.WithLabelValues(name).Inc()
	}
	now := q.now()
	d := q.bucketDur()
	slot := now.Truncate(d)
	q.mu.Lock()
	defer q.mu.Unlock()
	b := &q.colLocked(name).drift[(slot.UnixNano()/int64(d))%driftBuckets]
	if !b.start.Equal(slot) {
		sv := b.sumVec[:0]
		*b = driftBucket{start: slot, sumVec: sv}
	}
	b.n++
	if low {
		b.low++
	}
	if o.hasTop {
		b.scored++
		b.sumTop1 += float64(o.top1)
		b.bins[min(max(int(o.top1*scoreBins), 0), scoreBins-1)]++
	}
	if len(b.sumVec) != len(o.query) {
		b.sumVec = make([]float64, len(o.query))
	}
	var norm float64
	for _, x := range o.query {
		norm += float64(x) * float64(x)
	}
	if norm = math.Sqrt(norm); norm > 0 {
		for i, x := range o.query {
			b.sumVec[i] += float64(x) / norm
		}
	}
}

// driftSummary is the window's drift figures for one collection.
type driftSummary struct {
	Queries          int     `json:"queries"`
	LowScoreShare    float64 `json:"low_score_share"`
	MinScore         float64 `json:"min_score"`
	Top1Mean         float64 `json:"top1_score_mean"`
	Top1P10          float64 `json:"top1_score_p10"`
	Top1P50          float64 `json:"top1_score_p50"`
	Top1P90          float64 `json:"top1_score_p90"`
	CentroidDistance float64 `json:"centroid_distance"`
	hasCentroid      bool
}

func (q *qualityMonitor) driftLocked(c *colQuality, now time.Time) driftSummary {
	s := driftSummary{MinScore: q.cfg.Quality.MinScore, CentroidDistance: math.NaN()}
	var bins [scoreBins]int
	var sum []float64
	var scored, low int
	var sumTop1 float64
	from := now.Add(-q.window)
	for i := range c.drift {
		b := &c.drift[i]
		if b.n == 0 || !b.start.After(from) {
			continue
		}
		s.Queries += b.n
		low += b.low
		scored += b.scored
		sumTop1 += b.sumTop1
		for j, v := range b.bins {
			bins[j] += v
		}
		if len(b.sumVec) > 0 {
			if sum == nil {
				sum = make([]float64, len(b.sumVec))
			}
			if len(sum) == len(b.sumVec) {
				for j, v := range b.sumVec {
					sum[j] += v
				}
			}
		}
	}
	if s.Queries == 0 {
		return s
	}
	s.LowScoreShare = float64(low) / float64(s.Queries)
	if scored > 0 {
		s.Top1Mean = sumTop1 / float64(scored)
		s.Top1P10, s.Top1P50, s.Top1P90 = binQuantile(bins, scored, .1), binQuantile(bins, scored, .5), binQuantile(bins, scored, .9)
	}
	if sum != nil && len(c.catalog) == len(sum) {
		s.CentroidDistance = cosineDistance(sum, c.catalog)
		s.hasCentroid = !math.IsNaN(s.CentroidDistance)
	}
	return s
}

// binQuantile interpolates a quantile within the histogram bin that holds it.
func binQuantile(bins [scoreBins]int, n int, p float64) float64 {
	target := p * float64(n)
	acc := 0.0
	for i, c := range bins {
		if c == 0 {
			continue
		}
		if acc+float64(c) >= target {
			frac := (target - acc) / float64(c)
			return (float64(i) + frac) / scoreBins
		}
		acc += float64(c)
	}
	return 1
}

func cosineDistance(a, b []float64) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += a[i] * b[i]
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	if na == 0 || nb == 0 {
		return math.NaN()
	}
	return 1 - dot/math.Sqrt(na*nb)
}

// catalogCentroid is the mean unit vector of up to centroidSample items, chosen uniformly
// (reservoir sampling over the id listing, which carries no vectors).
func catalogCentroid(ctx context.Context, col *index.Collection) ([]float64, error) {
	var ids []string
	seen := 0
	rng := rand.New(rand.NewPCG(1, 2))
	cursor := ""
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		items, next, err := col.List(cursor, 10_000)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			seen++
			if len(ids) < centroidSample {
				ids = append(ids, it.ID)
			} else if j := rng.IntN(seen); j < centroidSample {
				ids[j] = it.ID
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	var sum []float64
	for _, id := range ids {
		it, err := col.Get(id)
		if errors.Is(err, index.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		if sum == nil {
			sum = make([]float64, len(it.Vector))
		}
		var norm float64
		for _, x := range it.Vector {
			norm += float64(x) * float64(x)
		}
		if norm = math.Sqrt(norm); norm > 0 && len(it.Vector) == len(sum) {
			for i, x := range it.Vector {
				sum[i] += float64(x) / norm
			}
		}
	}
	return sum, nil
}

// ---- feedback ----

// feedbackRequest is the body of POST /v1/collections/{c}/feedback. Results are the results shown,
// in rank order, each optionally judged; Clicked lists ids the user clicked. A repeated QueryID (a
// click arriving after the impression) updates the earlier event instead of counting twice.
type feedbackRequest struct {
	QueryID string           `json:"query_id"`
	K       int              `json:"k"`
	Results []feedbackResult `json:"results"`
	Clicked []string         `json:"clicked"`
}

type feedbackResult struct {
	ID       string `json:"id"`
	Relevant *bool  `json:"relevant"`
}

type feedbackEvent struct {
	at        time.Time
	queryID   string
	judged    bool
	precision float64 // precision@k over the first k judged results
	clicked   bool
}

func (q *qualityMonitor) parseFeedback(body []byte) (*feedbackRequest, error) {
	var req feedbackRequest
	if err := decodeJSONBody(body, &req); err != nil {
		return nil, err
	}
	lim := q.cfg.Limits
	switch {
	case len(req.Results) == 0 && len(req.Clicked) == 0:
		return nil, badRequest("feedback needs results (judged, in rank order) or clicked ids")
	case len(req.Results) > lim.MaxK:
		return nil, badRequest("results has %d entries, the limit is %d (limits.max_k)", len(req.Results), lim.MaxK)
	case len(req.Clicked) > lim.MaxK:
		return nil, badRequest("clicked has %d entries, the limit is %d (limits.max_k)", len(req.Clicked), lim.MaxK)
	case req.K < 0 || req.K > lim.MaxK:
		return nil, badRequest("k must be in 1..%d, got %d", lim.MaxK, req.K)
	case len(req.QueryID) > lim.MaxIDBytes:
		return nil, badRequest("query_id is longer than %d bytes", lim.MaxIDBytes)
	}
	for i, r := range req.Results {
		if r.ID == "" || len(r.ID) > lim.MaxIDBytes {
			return nil, badRequest("results[%d].id must be 1..%d bytes", i, lim.MaxIDBytes)
		}
	}
	for i, id := range req.Clicked {
		if id == "" || len(id) > lim.MaxIDBytes {
			return nil, badRequest("clicked[%d] must be 1..%d bytes", i, lim.MaxIDBytes)
		}
	}
	if req.K == 0 {
		req.K = lim.DefaultK
	}
	return &req, nil
}

// feedbackPrecision is precision@k of one judged list: relevant among the first k judged results,
// over min(k, judged). ok is false when nothing was judged.
func feedbackPrecision(results []feedbackResult, k int) (p float64, ok bool) {
	n, rel := 0, 0
	for _, r := range results {
		if r.Relevant == nil {
			continue
		}
		if n == k {
			break
		}
		n++
		if *r.Relevant {
			rel++
		}
	}
	if n == 0 {
		return 0, false
	}
	return float64(rel) / float64(n), true
}

// recordFeedback adds one event to the collection's window.
func (q *qualityMonitor) recordFeedback(name string, req *feedbackRequest) feedbackSummary {
	p, judged := feedbackPrecision(req.Results, req.K)
	clicked := len(req.Clicked) > 0
	now := q.now()
	q.mu.Lock()
	c := q.colLocked(name)
	q.pruneFeedbackLocked(c, now)
	ev := c.byQuery[req.QueryID]
	if req.QueryID == "" || ev == nil {
		ev = &feedbackEvent{at: now, queryID: req.QueryID}
		c.feedback = append(c.feedback, ev)
		if req.QueryID != "" {
			c.byQuery[req.QueryID] = ev
		}
		if len(c.feedback) > maxFeedback {
			q.dropOldestLocked(c, len(c.feedback)-maxFeedback)
		}
	}
	if judged {
		ev.judged, ev.precision = true, p
	}
	ev.clicked = ev.clicked || clicked
	sum := feedbackSummaryLocked(c, req.K)
	q.mu.Unlock()
	kind := "impression"
	if clicked {
		kind = "click"
	}
	q.m.feedback.WithLabelValues(name, kind).Inc()
	if judged {
		q.m.feedback.WithLabelValues(name, "judged").Inc()
	}
	q.setFeedbackGauges(name, sum)
	return sum
}

func (q *qualityMonitor) pruneFeedbackLocked(c *colQuality, now time.Time) {
	from := now.Add(-q.window)
	n := 0
	for n < len(c.feedback) && !c.feedback[n].at.After(from) {
		n++
	}
	q.dropOldestLocked(c, n)
}

func (q *qualityMonitor) dropOldestLocked(c *colQuality, n int) {
	for _, ev := range c.feedback[:n] {
		if ev.queryID != "" && c.byQuery[ev.queryID] == ev {
			delete(c.byQuery, ev.queryID)
		}
	}
	c.feedback = slices.Delete(c.feedback, 0, n)
}

// feedbackSummary is the feedback window of one collection.
type feedbackSummary struct {
	Events           int     `json:"events"`
	Judged           int     `json:"judged"`
	PrecisionAtK     float64 `json:"precision_at_k"`
	K                int     `json:"k"`
	Clicked          int     `json:"clicked"`
	ClickThroughRate float64 `json:"click_through_rate"`
}

// feedbackSummaryLocked: precision is the mean of the judged events' precision@k (macro average);
// click-through rate is the share of events with at least one click.
func feedbackSummaryLocked(c *colQuality, k int) feedbackSummary {
	s := feedbackSummary{Events: len(c.feedback), K: k}
	var psum float64
	for _, ev := range c.feedback {
		if ev.judged {
			s.Judged++
			psum += ev.precision
		}
		if ev.clicked {
			s.Clicked++
		}
	}
	if s.Judged > 0 {
		s.PrecisionAtK = psum / float64(s.Judged)
	}
	if s.Events > 0 {
		s.ClickThroughRate = float64(s.Clicked) / float64(s.Events)
	}
	return s
}

func (q *qualityMonitor) setFeedbackGauges(name string, s feedbackSummary) {
	if s.Judged > 0 {
		q.m.precision.WithLabelValues(name).Set(s.PrecisionAtK)
	} else {
		q.m.precision.DeleteLabelValues(name)
	}
	if s.Events > 0 {
		q.m.ctr.WithLabelValues(name).Set(s.ClickThroughRate)
	} else {
		q.m.ctr.DeleteLabelValues(name)
	}
}

func (q *qualityMonitor) handleFeedback(c *fiber.Ctx) error {
	name, err := pathParam(c, "c")
	if err != nil {
		return err
	}
	if _, err := q.db.Collection(name); err != nil {
		if errors.Is(err, index.ErrNotFound) {
			return errorf(http.StatusNotFound, "collection_not_found", "no collection named %q", name)
		}
		return err
	}
	req, err := q.parseFeedback(c.Body())
	if err != nil {
		return err
	}
	sum := q.recordFeedback(name, req)
	return c.Status(http.StatusAccepted).JSON(fiber.Map{"recorded": true, "query_id": req.QueryID, "window": sum})
}

// registerRoutes adds the quality endpoints (feedback) under /v1. Feedback takes the read scope:
// the storefront that searches is the one that reports clicks, and it changes no catalog data.
func (q *qualityMonitor) registerRoutes(v1 fiber.Router, read, write fiber.Handler) {
	v1.Post("/collections/:c/feedback", read, q.handleFeedback)
}

// ---- probes ----

// probeConfig is the labelled-probe setup (config quality.probes).
type probeConfig struct {
	Manifests  []string
	Collection string
	Interval   time.Duration
	K          int
	GroupField string
}

func probeConfigFrom(cfg config.Config) probeConfig {
	p := cfg.Quality.Probes
	pc := probeConfig{Manifests: p.Manifests, Collection: p.Collection, Interval: p.Interval, K: p.K, GroupField: p.GroupField}
	if pc.Collection == "" {
		pc.Collection = cfg.Data.DefaultCollection
	}
	return pc
}

type probe struct {
	id, group string
	vec       []float32
}

// probeSet is one manifest's probes and latest result. Guarded by qualityMonitor.mu.
type probeSet struct {
	name      string
	probes    []probe
	failed    int // probes whose photo could not be read or embedded
	precision float64
	hitRate   float64
	runs      int
	lastRun   time.Time
	lastErr   string
}

// loadProbes reads and embeds every manifest. A manifest that fails is logged and retried on the
// next round.
func (q *qualityMonitor) loadProbes(ctx context.Context) {
	for _, path := range q.probes.Manifests {
		name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		q.mu.Lock()
		_, done := q.probeSets[name]
		q.mu.Unlock()
		if done {
			continue
		}
		ps, err := q.loadProbeSet(ctx, name, path)
		if err != nil {
			if ctx.Err() == nil {
				q.log.Warn("quality: probe set not loaded", "set", name, "path", path, "err", err)
			}
			continue
		}
		q.mu.Lock()
		q.probeSets[name] = ps
		q.mu.Unlock()
	}
}

func (q *qualityMonitor) loadProbeSet(ctx context.Context, name, path string) (*probeSet, error) {
	srcs, err := ingest.Collect([]string{path})
	if err != nil {
		return nil, err
	}
	ps := &probeSet{name: name}
	var imgs []embed.Image
	var kept []probe
	for _, s := range srcs {
		g := metadataField(s.Metadata, q.probes.GroupField)
		if g == "" {
			ps.failed++
			continue
		}
		data, err := os.ReadFile(s.Path)
		if err != nil {
			ps.failed++
			continue
		}
		imgs = append(imgs, embed.Image{Data: data})
		kept = append(kept, probe{id: s.ID, group: g})
	}
	for lo := 0; lo < len(imgs); lo += 32 {
		hi := min(lo+32, len(imgs))
		embs, err := q.eng.Embed(ctx, imgs[lo:hi])
		if err != nil {
			return nil, err
		}
		for i, e := range embs {
			if e.Err != nil {
				ps.failed++
				continue
			}
			p := kept[lo+i]
			p.vec = e.Vector
			ps.probes = append(ps.probes, p)
		}
	}
	if len(ps.probes) == 0 {
		return nil, fmt.Errorf("no usable probe in %s (%d failed; each needs a photo and a %q value)", path, ps.failed, q.probes.GroupField)
	}
	return ps, nil
}

// metadataField is the string form of a top-level metadata field ("" when absent).
func metadataField(meta json.RawMessage, field string) string {
	if len(meta) == 0 {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(meta, &m) != nil || m[field] == nil {
		return ""
	}
	switch v := m[field].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// runProbes searches every probe of every set; a result is relevant when its group metadata equals
// the probe's. The probe's own id is excluded in case it was indexed after all.
func (q *qualityMonitor) runProbes(ctx context.Context) {
	col, err := q.db.Collection(q.probes.Collection)
	if err != nil {
		return
	}
	q.mu.Lock()
	sets := make([]*probeSet, 0, len(q.probeSets))
	for _, ps := range q.probeSets {
		sets = append(sets, ps)
	}
	q.mu.Unlock()
	k := q.probes.K
	for _, ps := range sets {
		var psum, hits float64
		n := 0
		var lastErr string
		for _, p := range ps.probes {
			res, err := col.Search(ctx, p.vec, index.SearchOptions{K: k, ExcludeIDs: []string{p.id}})
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				lastErr = err.Error()
				continue
			}
			rel := 0
			for _, r := range res {
				if metadataField(r.Metadata, q.probes.GroupField) == p.group {
					rel++
				}
			}
			psum += float64(rel) / float64(k)
			if rel > 0 {
				hits++
			}
			n++
		}
		q.mu.Lock()
		ps.runs++
		ps.lastRun = q.now()
		ps.lastErr = lastErr
		if n > 0 {
			ps.precision, ps.hitRate = psum/float64(n), hits/float64(n)
		}
		prec := ps.precision
		q.mu.Unlock()
		if n > 0 {
			q.m.probePrecision.WithLabelValues(ps.name).Set(prec)
			q.m.probeRuns.WithLabelValues(ps.name).Inc()
			q.m.probeLastRun.WithLabelValues(ps.name).Set(float64(q.now().Unix()))
		}
	}
}

// ---- maintenance ----

// maintainLoop refreshes windowed gauges, recomputes catalog centroids when collections change and
// runs the probes on their interval and after every change of the probed collection.
func (q *qualityMonitor) maintainLoop(ctx context.Context) {
	tick := time.NewTicker(maintainEvery)
	defer tick.Stop()
	probing := len(q.probes.Manifests) > 0
	var lastProbe, lastChangeCheck time.Time
	probeCount := -1
	if probing {
		q.loadProbes(ctx)
	}
	for {
		now := q.now()
		if now.Sub(lastChangeCheck) >= changeEvery {
			lastChangeCheck = now
			q.refreshCentroids(ctx)
			if probing {
				if col, err := q.db.Collection(q.probes.Collection); err == nil {
					if n := col.Info().Count; n != probeCount {
						probeCount = n
						lastProbe = time.Time{} // index changed: probe now
					}
				}
			}
		}
		if probing && now.Sub(lastProbe) >= q.probes.Interval {
			q.loadProbes(ctx) // retries sets that failed to load
			q.runProbes(ctx)
			lastProbe = q.now()
		}
		q.refreshGauges()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// refreshCentroids recomputes the catalog centroid of queried collections whose size changed, at
// most every centroidEvery.
func (q *qualityMonitor) refreshCentroids(ctx context.Context) {
	q.mu.Lock()
	names := make([]string, 0, len(q.cols))
	for name, c := range q.cols {
		if c.catalog == nil || q.now().Sub(c.catalogAt) >= centroidEvery {
			names = append(names, name)
		}
	}
	q.mu.Unlock()
	for _, name := range names {
		col, err := q.db.Collection(name)
		if err != nil {
			continue
		}
		n := col.Info().Count
		q.mu.Lock()
		c := q.colLocked(name)
		stale := c.catalog == nil || n != c.catalogCount
		q.mu.Unlock()
		if !stale {
			continue
		}
		sum, err := catalogCentroid(ctx, col)
		if err != nil {
			if ctx.Err() == nil {
				q.log.Debug("quality: catalog centroid", "collection", name, "err", err)
			}
			continue
		}
		q.mu.Lock()
		c.catalog, c.catalogCount, c.catalogAt = sum, n, q.now()
		q.mu.Unlock()
	}
}

// refreshGauges publishes the windowed figures, so they decay when traffic stops.
func (q *qualityMonitor) refreshGauges() {
	now := q.now()
	type pub struct {
		name string
		fb   feedbackSummary
		d    driftSummary
	}
	var out []pub
	var gone []string
	q.mu.Lock()
	for name, c := range q.cols {
		if _, err := q.db.Collection(name); errors.Is(err, index.ErrNotFound) {
			delete(q.cols, name) // dropped: forget its windows and series
			gone = append(gone, name)
			continue
		}
		q.pruneFeedbackLocked(c, now)
		out = append(out, pub{name, feedbackSummaryLocked(c, q.cfg.Limits.DefaultK), q.driftLocked(c, now)})
	}
	q.mu.Unlock()
	for _, name := range gone {
		for _, v := range []*prometheus.GaugeVec{q.m.recall, q.m.precision, q.m.ctr, q.m.lowShare, q.m.centroid} {
			v.DeleteLabelValues(name)
		}
	}
	for _, p := range out {
		q.setFeedbackGauges(p.name, p.fb)
		if p.d.Queries > 0 {
			q.m.lowShare.WithLabelValues(p.name).Set(p.d.LowScoreShare)
		} else {
			q.m.lowShare.DeleteLabelValues(p.name)
		}
		if p.d.hasCentroid {
			q.m.centroid.WithLabelValues(p.name).Set(p.d.CentroidDistance)
		} else {
			q.m.centroid.DeleteLabelValues(p.name)
		}
	}
}

// summary is the "quality" object of /v1/stats; nil when there is nothing to show.
func (q *qualityMonitor) summary() map[string]any {
	now := q.now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.cols) == 0 && len(q.probeSets) == 0 {
		return nil
	}
	cols := map[string]any{}
	names := make([]string, 0, len(q.cols))
	for name := range q.cols {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := q.cols[name]
		q.pruneFeedbackLocked(c, now)
		entry := map[string]any{}
		if n := min(c.recallN, recallRing); n > 0 {
			entry["ann_recall"] = map[string]any{"mean": c.recallMean(), "samples": c.recallN, "window_samples": n}
		}
		if len(c.feedback) > 0 {
			entry["feedback"] = feedbackSummaryLocked(c, q.cfg.Limits.DefaultK)
		}
		if d := q.driftLocked(c, now); d.Queries > 0 {
			m := map[string]any{
				"queries": d.Queries, "low_score_share": d.LowScoreShare, "min_score": d.MinScore,
				"top1_score_mean": d.Top1Mean, "top1_score_p10": d.Top1P10, "top1_score_p50": d.Top1P50, "top1_score_p90": d.Top1P90,
			}
			if d.hasCentroid {
				m["centroid_distance"] = d.CentroidDistance
			}
			entry["drift"] = m
		}
		if len(entry) > 0 {
			cols[name] = entry
		}
	}
	out := map[string]any{"window_s": int64(q.window.Seconds()), "recall_sample_rate": q.cfg.Quality.RecallSampleRate}
	if len(cols) > 0 {
		out["collections"] = cols
	}
	if len(q.probeSets) > 0 {
		probes := map[string]any{}
		for name, ps := range q.probeSets {
			p := map[string]any{"collection": q.probes.Collection, "probes": len(ps.probes), "failed": ps.failed, "k": q.probes.K, "runs": ps.runs}
			if ps.runs > 0 {
				p["precision_at_k"] = ps.precision
				p["hit_rate_at_k"] = ps.hitRate
				p["last_run"] = ps.lastRun.UTC().Format(time.RFC3339)
			}
			if ps.lastErr != "" {
				p["last_error"] = ps.lastErr
			}
			probes[name] = p
		}
		out["probes"] = probes
	}
	if len(cols) == 0 && len(q.probeSets) == 0 {
		return nil
	}
	return out
}

// ---- metrics ----

type qualityMetrics struct {
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

func newQualityMetrics(reg prometheus.Registerer) *qualityMetrics {
	const ns, sub = "lookalike", "quality"
	col := []string{"collection"}
	m := &qualityMetrics{
		recall: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "ann_recall",
			Help: "Mean recall@k of HNSW answers against exact search over the latest 100 sampled queries."}, col),
		recallHist: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "ann_recall_ratio",
			Help:    "Recall@k of each sampled HNSW answer against exact search.",
			Buckets: []float64{.5, .7, .8, .9, .95, .98, .99, 1}}, col),
		recallSamples: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "recall_samples_total",
			Help: "Sampled queries re-run with exact search, by outcome (measured, error)."}, []string{"collection", "outcome"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "observations_dropped_total",
			Help: "Search observations dropped because a quality queue was full (observe, recall)."}, []string{"queue"}),
		precision: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "feedback_precision",
			Help: "Mean precision@k of judged feedback over quality.feedback_window."}, col),
		ctr: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "click_through_rate",
			Help: "Share of feedback events (result lists shown) with at least one click, over quality.feedback_window."}, col),
		feedback: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "feedback_events_total",
			Help: "Feedback received, by kind (impression, click, judged)."}, []string{"collection", "kind"}),
		probePrecision: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "probe_precision",
			Help: "Mean precision@k of the labelled probe set's latest run."}, []string{"set"}),
		probeRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "probe_runs_total",
			Help: "Runs of each labelled probe set."}, []string{"set"}),
		probeLastRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "probe_last_run_timestamp_seconds",
			Help: "Unix time of each probe set's latest run."}, []string{"set"}),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "queries_observed_total",
			Help: "Answered searches seen by the quality monitor."}, col),
		top1: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "top1_score",
			Help:    "Cosine similarity of the best result of each search.",
			Buckets: []float64{.1, .2, .3, .4, .5, .6, .7, .8, .9, .95, 1}}, col),
		lowScore: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "low_score_queries_total",
			Help: "Searches whose best score was below quality.min_score (or had no result)."}, col),
		lowShare: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "low_score_share",
			Help: "Share of searches over quality.feedback_window whose best score was below quality.min_score."}, col),
		centroid: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "query_centroid_distance",
			Help: "Cosine distance between the mean query embedding over the window and the catalog's mean embedding."}, col),
	}
	reg.MustRegister(m.recall, m.recallHist, m.recallSamples, m.dropped, m.precision, m.ctr, m.feedback,
		m.probePrecision, m.probeRuns, m.probeLastRun, m.queries, m.top1, m.lowScore, m.lowShare, m.centroid)
	return m
}
