package quality

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/internal/guard"
)

// Embedder is what probes need of the embedding engine (*embed.Engine).
type Embedder interface {
	Embed(ctx context.Context, imgs []embed.Image) ([]embed.Embedding, error)
}

// Monitor measures retrieval quality of the collections in one DB. Its methods are safe for
// concurrent use.
type Monitor struct {
	cfg    config.Config
	db     *index.DB
	eng    Embedder
	log    *slog.Logger
	m      *metrics
	probes probeConfig
	window time.Duration
	now    func() time.Time

	// engineFor, when set (SetEngines), is the engine that makes a fingerprint's vectors: the
	// probed collection's probes are embedded with it (its profile and learned projection).
	engineFor func(fingerprint string) (Embedder, bool)

	obs     chan observation // every answered search (drift; sampled ones go on to recall)
	samples chan observation // recall jobs

	mu        sync.Mutex
	cols      map[string]*colQuality
	probeSets map[string]*probeSet
	scored    map[string]*probeSet // ScoreProbes' sets by name and fingerprint
	seeded    map[string]bool      // collections whose series exist (metrics.seedCollection)
}

// SetEngines has the probes of the probed collection embedded by f(its fingerprint) when f knows
// it, instead of the monitor's engine under the collection's profile: a tuned collection's vectors
// are projected, which only the engine bound to its projection reproduces. Call it before Start.
func (q *Monitor) SetEngines(f func(fingerprint string) (Embedder, bool)) { q.engineFor = f }

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

// New builds a monitor over db; cfg is validated configuration (quality.*, limits.*, and
// data.default_collection as the default probed collection). eng embeds probe photos and may be nil
// when no probe manifest is configured. The metrics are registered on reg (nil: not exported); log
// may be nil (discard). Nothing runs until Start.
func New(cfg config.Config, eng Embedder, db *index.DB, reg prometheus.Registerer, log *slog.Logger) (*Monitor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc := probeConfigFrom(cfg)
	if len(pc.Manifests) > 0 && eng == nil {
		return nil, fmt.Errorf("%w: quality.probes.manifests is set but there is no embedder", ErrConfig)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	w := cfg.Quality.FeedbackWindow
	if w <= 0 {
		w = time.Hour
	}
	q := &Monitor{
		cfg: cfg, db: db, eng: eng, log: log, m: m, probes: pc, window: w, now: time.Now,
		obs:       make(chan observation, obsQueue),
		samples:   make(chan observation, sampleQueue),
		cols:      map[string]*colQuality{},
		probeSets: map[string]*probeSet{},
		scored:    map[string]*probeSet{},
		seeded:    map[string]bool{},
	}
	// Every series the example dashboard and alert rules read exists from the first scrape:
	// collections created later are seeded by the maintenance pass.
	q.seedCollections()
	for _, path := range pc.Manifests {
		m.seedProbeSet(probeSetName(path), time.Now())
	}
	return q, nil
}

// Start launches the background loops (observations, recall re-runs, maintenance) under
// internal/guard. They stop when ctx is done; each marks wg done when it has stopped.
func (q *Monitor) Start(ctx context.Context, wg *sync.WaitGroup) {
	guard.Go(ctx, wg, q.log, "quality.observe", q.observeLoop)
	guard.Go(ctx, wg, q.log, "quality.recall", q.recallLoop)
	guard.Go(ctx, wg, q.log, "quality.maintain", q.maintainLoop)
}

// Observe records one answered search (opts as searched, results as returned). It is meant for the
// request path: it copies what it keeps and never blocks.
func (q *Monitor) Observe(col *index.Collection, query []float32, opts index.SearchOptions, results []index.Result) {
	o := observation{col: col, query: slices.Clone(query), opts: opts}
	if len(results) > 0 {
		o.top1, o.hasTop = results[0].Score, true
	}
	if r := q.cfg.Quality.RecallSampleRate; !opts.Exact && r > 0 && rand.Float64() < r {
		o.sample = true
		// ExcludeIDs may point into a request buffer that is reused once the request is answered.
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

func (q *Monitor) observeLoop(ctx context.Context) {
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

func (q *Monitor) recallLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-q.samples:
			q.measureRecall(ctx, o)
		}
	}
}

// colQuality is one collection's windows. Guarded by Monitor.mu.
type colQuality struct {
	recall  [recallRing]float64
	recallN int

	feedback []*feedbackEvent
	byQuery  map[string]*feedbackEvent

	drift        [driftBuckets]driftBucket
	catalog      []float64 // centroid of a sample of the catalog
	catalogCount int       // collection size when it was computed
	catalogAt    time.Time
	minScore     float64 // quality.min_score for this collection's profile (0 until a search)
}

func (q *Monitor) colLocked(name string) *colQuality {
	c := q.cols[name]
	if c == nil {
		c = &colQuality{byQuery: map[string]*feedbackEvent{}}
		q.cols[name] = c
	}
	return c
}
