package eval

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/project"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/rerank"
)

// Embedder is what eval needs of an embedding engine (*embed.Engine).
type Embedder interface {
	Embed(ctx context.Context, imgs []embed.Image) ([]embed.Embedding, error)
	Info() embed.Info
}

// DefaultProjectSample is how many database photos a projection is learned from at most: the
// issue's 2–5k; the Oxford subset (1 684) is learned whole.
const DefaultProjectSample = 2000

// Config is one retrieval configuration to measure. The zero value is the model's own embedding
// searched with the collection's default efSearch.
type Config struct {
	// Label names the configuration in reports; "" = a summary of the fields.
	Label string `json:"label"`
	// Ef is efSearch for HNSW queries; 0 = the index default.
	Ef int `json:"ef,omitempty"`
	// QE is average query expansion: the query is replaced by the mean of itself and its top QE
	// results, then searched again; 0 = off.
	QE int `json:"qe,omitempty"`
	// Pool "" or "avg" uses the model's pooled embedding; "gem" is generalised-mean pooling (p = GeMP,
	// default 3) of the last conv feature map, computed here from Embedding.FeatureMap.
	Pool string  `json:"pool,omitempty"`
	GeMP float64 `json:"gem_p,omitempty"`
	// DBCrop overrides the spec's crop ("center" or "squash") for database images only.
	DBCrop string `json:"db_crop,omitempty"`
	// InputSize overrides the spec's input size (and resize_shorter scaled alike); 0 = the spec's.
	InputSize int `json:"input_size,omitempty"`
	// Profile is the descriptor profile of database images and queries (spec.ParseProfile); "" =
	// the engine's default.
	Profile string `json:"profile,omitempty"`
	// Project is a learned per-region PCA ("pca512") or PCA-whitening ("pw512": project.ParseName) of a
	// regional profile, learned from the database images' regions without labels; "" = none.
	Project string `json:"project,omitempty"`
	// Rerank is the index's re-ranking mode (none, qe: expansion over the top 2, kr: k-reciprocal,
	// qe+kr); the zero value is none. A query that is a database item (UKBench) is asked as
	// Similar, so k-reciprocal re-ranking uses its stored row.
	Rerank rerank.Mode `json:"rerank,omitempty"`
	// SelfAsVector searches a query that is a database item by its vector, as image search does
	// with a photo that is also in the catalog, instead of as Similar (re-ranking modes only).
	SelfAsVector bool `json:"self_as_vector,omitempty"`
	// KRScale is k-reciprocal re-ranking's row scale (rerank.Params.RowScale): 0 the default
	// (rerank.DefaultRowScale), -1 none (1 - cosine as it is), n > 0 each row's distances divided
	// by its largest to a sample of n items, as the authors' code divides by the row's largest.
	KRScale int `json:"kr_scale,omitempty"`
}

// String is the label or a summary.
func (c Config) String() string {
	if c.Label != "" {
		return c.Label
	}
	s := "ef=" + strconv.Itoa(c.Ef)
	if c.Ef == 0 {
		s = "ef=default"
	}
	if c.QE > 0 {
		s += " qe=" + strconv.Itoa(c.QE)
	}
	if c.Pool != "" && c.Pool != "avg" {
		s += " pool=" + c.Pool
		if c.GeMP > 0 && c.GeMP != 3 {
			s += " gem-p=" + strconv.FormatFloat(c.GeMP, 'g', -1, 64)
		}
	}
	if c.DBCrop != "" {
		s += " db-crop=" + c.DBCrop
	}
	if c.InputSize > 0 {
		s += " size=" + strconv.Itoa(c.InputSize)
	}
	if c.Project != "" {
		s = "project=" + c.Project + " " + s
	}
	if c.Profile != "" {
		s = "profile=" + c.Profile + " " + s
	}
	if c.reranks() {
		s += " rerank=" + c.Rerank.String()
		if c.SelfAsVector {
			s += " self=vector"
		}
		switch {
		case c.KRScale < 0:
			s += " kr-scale=none"
		case c.KRScale > 0:
			s += " kr-scale=" + strconv.Itoa(c.KRScale)
		}
	}
	return s
}

// projected reports whether the configuration asks for a learned projection ("none" is none).
func (c Config) projected() bool {
	_, ok, err := project.ParseName(c.Project)
	return ok && err == nil
}

// reranks reports whether the configuration asks the index to re-rank.
func (c Config) reranks() bool { return c.Rerank.QE() || c.Rerank.KR() }

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Ef < 0:
		return fmt.Errorf("%w: ef must be >= 0", ErrConfig)
	case c.QE < 0 || c.QE > 100:
		return fmt.Errorf("%w: qe must be in 0..100", ErrConfig)
	case c.Pool != "" && c.Pool != "avg" && c.Pool != "gem":
		return fmt.Errorf("%w: pool must be avg or gem, got %q", ErrConfig, c.Pool)
	case c.GeMP < 0 || c.GeMP > 20:
		return fmt.Errorf("%w: gem_p must be in 0..20", ErrConfig)
	case c.DBCrop != "" && c.DBCrop != "center" && c.DBCrop != "squash":
		return fmt.Errorf("%w: db-crop must be center or squash, got %q", ErrConfig, c.DBCrop)
	case c.InputSize != 0 && (c.InputSize < 32 || c.InputSize > 1024):
		return fmt.Errorf("%w: input size must be in 32..1024", ErrConfig)
	case c.Rerank > rerank.ModeQEKR:
		return fmt.Errorf("%w: unknown rerank mode %v", ErrConfig, c.Rerank)
	case c.KRScale < -1 || c.KRScale > rerank.MaxRowScale:
		return fmt.Errorf("%w: kr-scale must be none or 1..%d", ErrConfig, rerank.MaxRowScale)
	case c.QE > 0 && c.reranks():
		return fmt.Errorf("%w: qe (eval's own expansion) and rerank do not combine; use rerank=qe+kr", ErrConfig)
	}
	if _, _, err := project.ParseName(c.Project); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if c.Profile != "" {
		p, err := spec.ParseProfile(c.Profile)
		if err == nil && c.projected() && !p.Regional() {
			err = fmt.Errorf("projection %s works on regions: it needs a regional profile, not %s", c.Project, p.Name)
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
		if p.Regional() && (c.Pool == "gem" || c.DBCrop != "" || c.InputSize != 0) {
			return fmt.Errorf("%w: profile %s does its own resizing and pooling: drop pool, db-crop and size", ErrConfig, p.Name)
		}
	}
	return nil
}

// Options configure Run. Zero values pick the documented defaults.
type Options struct {
	// Spec is the base model spec (the default engine's).
	Spec spec.Model
	// Engine returns an engine for a spec; the caller owns the engines (Run never closes them).
	Engine func(ctx context.Context, m spec.Model) (Embedder, error)
	// Ks are the cut-offs of precision@k and recall@k; default 1, 4, 10.
	Ks []int
	// Depth is how many results each query ranks (AP is computed over them); default: the whole
	// database up to index.MaxK for datasets with explicit positives (Oxford), 100 otherwise.
	Depth int
	// ProjectSample caps the database photos a Config.Project projection is learned from;
	// default DefaultProjectSample.
	ProjectSample int
	// KNN is k of the k-NN label vote; default 10.
	KNN int
	// Index are the temporary index's options; ExactThreshold is forced off (-1) so that HNSW is
	// really measured, and NoSync on.
	Index index.Options
	// TempDir holds the temporary index; "" = os.TempDir().
	TempDir string
	// Batch is how many images one Embed call takes; default 64.
	Batch int
	// SkipExact skips the exact-search pass.
	SkipExact bool
	// Progress, when set, is called as work advances.
	Progress func(stage string, done, total int)
	// Logger; nil = discard.
	Logger *slog.Logger
	// DumpDir, when set, receives each embedding variant's vectors and relevance as
	// variant-<n>.json (Dump), n counting the variants from 1 in the order they are built.
	DumpDir string
}

// Metrics are one search mode's quality figures (JSON keys as the CLI prints them).
type Metrics struct {
	MAP          float64            `json:"mAP"`
	NSScore      *float64           `json:"ns_score,omitempty"`
	PrecisionAtK map[string]float64 `json:"precision_at_k"`
	RecallAtK    map[string]float64 `json:"recall_at_k"`
	MAPAtK       map[string]float64 `json:"mAP_at_k"`
	KNNAccuracy  *float64           `json:"knn_accuracy,omitempty"`
	// PerGroup is precision@k and mAP@k (k = the largest cut-off) by class, for labelled datasets.
	PerGroup map[string]GroupMetrics `json:"per_group,omitempty"`
	// Top1Score is the distribution of each query's best score (the query itself excluded), the
	// figure quality.min_score is set against.
	Top1Score *ScoreStats `json:"top1_score,omitempty"`
	// QPS is queries per second of this mode (single caller, query expansion included).
	QPS float64 `json:"qps"`
	// APs and NSs are each query's AP and N-S score (NaN: not run), for the paired bootstrap.
	APs []float64 `json:"-"`
	NSs []float64 `json:"-"`
}

// ScoreStats summarise cosine scores.
type ScoreStats struct {
	Mean float64 `json:"mean"`
	P10  float64 `json:"p10"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
}

func scoreStats(v []float64) *ScoreStats {
	var xs []float64
	for _, x := range v {
		if !math.IsNaN(x) {
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 {
		return nil
	}
	sort.Float64s(xs)
	var sum float64
	for _, x := range xs {
		sum += x
	}
	q := func(p float64) float64 { return xs[min(int(p*float64(len(xs))), len(xs)-1)] }
	return &ScoreStats{Mean: sum / float64(len(xs)), P10: q(.1), P50: q(.5), P90: q(.9)}
}

// GroupMetrics are one class's figures.
type GroupMetrics struct {
	Queries   int     `json:"queries"`
	Precision float64 `json:"precision_at_k"`
	MAPAtK    float64 `json:"mAP_at_k"`
	KNN       float64 `json:"knn_accuracy,omitempty"`
}

// Report is one configuration's result: HNSW metrics at the top level, exact search under Exact.
type Report struct {
	Dataset string `json:"dataset"`
	Config  Config `json:"config"`
	Model   string `json:"model"`
	Items   int    `json:"items"`
	Queries int    `json:"queries"`
	// Failed counts images that could not be embedded (skipped; a failed query counts as AP 0).
	Failed int `json:"failed"`
	Depth  int `json:"depth"`
	Metrics
	Exact *Metrics `json:"exact,omitempty"`
	// ANNRecall is recall@10 of the HNSW answers against exact search (1 = no ANN loss).
	ANNRecall *float64 `json:"ann_recall_at_10,omitempty"`
	// MAPDelta and NSDelta are this configuration's HNSW mAP and N-S score minus the first
	// configuration's, with a paired bootstrap 95 % interval over the queries (PairedBootstrap).
	MAPDelta     *Interval `json:"mAP_delta,omitempty"`
	NSDelta      *Interval `json:"ns_delta,omitempty"`
	EmbedPerSec  float64   `json:"embed_per_sec"`
	EmbedSeconds float64   `json:"embed_seconds"`
	IndexSeconds float64   `json:"index_seconds"`
	TotalSeconds float64   `json:"total_seconds"`
	// EmbedCost is this configuration's embedding time over the first configuration's, on the same
	// images in the same run (1 when they share their embeddings).
	EmbedCost *float64 `json:"embed_cost_ratio,omitempty"`
}

// vectors of one preprocessing variant.
type vectorSet struct {
	db      map[string][]float32
	queries map[string][]float32
	failed  int
	embedS  float64
	images  int
	model   string
}

// Run measures every configuration on ds. Configurations sharing a preprocessing variant share its
// embeddings and index.
func Run(ctx context.Context, ds *Dataset, cfgs []Config, o Options) ([]Report, error) {
	if len(cfgs) == 0 {
		cfgs = []Config{{}}
	}
	for _, c := range cfgs {
		if err := c.Validate(); err != nil {
			return nil, err
		}
	}
	if o.Engine == nil {
		return nil, fmt.Errorf("%w: no engine", ErrConfig)
	}
	o.setDefaults(ds)
	type built struct {
		vs  *vectorSet
		col *index.Collection
		db  *index.DB
		dir string
		idx float64
	}
	cache := map[string]*built{}
	regions := map[string]*regionSet{} // database regions by profile, shared by projections
	defer func() {
		for _, b := range cache {
			b.db.Close()
			os.RemoveAll(b.dir)
		}
	}()
	type exactPass struct {
		m   Metrics
		top [][]string
	}
	exactCache := map[string]exactPass{}
	var reports []Report
	for _, c := range cfgs {
		t0 := time.Now()
		key := c.variantKey()
		b, ok := cache[key]
		if !ok {
			vs, err := embedVariant(ctx, ds, c, o, regions)
			if err != nil {
				return nil, err
			}
			b = &built{vs: vs}
			if o.DumpDir != "" {
				if err := writeDump(o.DumpDir, len(cache)+1, ds, c, vs, o); err != nil {
					return nil, err
				}
			}
			t1 := time.Now()
			b.dir, b.db, b.col, err = buildIndex(ctx, ds, vs, key, o)
			if err != nil {
				return nil, err
			}
			b.idx = time.Since(t1).Seconds()
			cache[key] = b
		}
		r := Report{Dataset: ds.Name, Config: c, Items: len(b.vs.db), Queries: len(ds.Queries), Failed: b.vs.failed, Depth: o.Depth, Model: b.vs.model,
			EmbedSeconds: b.vs.embedS, IndexSeconds: b.idx}
		r.Config.Label = c.String()
		if b.vs.embedS > 0 {
			r.EmbedPerSec = float64(b.vs.images) / b.vs.embedS
		}
		if err := useRerankParams(b.col, c); err != nil {
			return nil, err
		}
		ann, _, err := searchAll(ctx, ds, b.vs, b.col, c, o, false)
		if err != nil {
			return nil, err
		}
		r.Metrics = ann
		if !o.SkipExact {
			// Exact search ignores ef: configurations differing only in ef share one pass.
			ek := fmt.Sprintf("%s;qe=%d;rerank=%v;self=%v;krs=%d", key, c.QE, c.Rerank, c.SelfAsVector, c.KRScale)
			ep, ok := exactCache[ek]
			if !ok {
				ep.m, ep.top, err = searchAll(ctx, ds, b.vs, b.col, c, o, true)
				if err != nil {
					return nil, err
				}
				exactCache[ek] = ep
			}
			ex, exTop := ep.m, ep.top
			r.Exact = &ex
			rec, err := annRecall(ctx, ds, b.vs, b.col, c, exTop)
			if err != nil {
				return nil, err
			}
			r.ANNRecall = &rec
		}
		// t0 precedes embedding and indexing only for the configuration that built them.
		r.TotalSeconds = time.Since(t0).Seconds()
		reports = append(reports, r)
	}
	addDeltas(ds, reports)
	return reports, nil
}

// setDefaults fills the zero options with their documented defaults for ds.
func (o *Options) setDefaults(ds *Dataset) {
	if len(o.Ks) == 0 {
		o.Ks = []int{1, 4, 10}
	}
	if o.KNN <= 0 {
		o.KNN = 10
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Depth <= 0 {
		o.Depth = 100
		if ds.OxfordAP {
			o.Depth = index.MaxK
		}
	}
	o.Depth = min(o.Depth, len(ds.Database), index.MaxK-1)
	for _, k := range o.Ks {
		o.Depth = max(o.Depth, min(k, len(ds.Database)))
	}
}

// variantKey identifies what changes the vectors (not the search).
func (c Config) variantKey() string {
	p := c.GeMP
	if c.Pool != "gem" {
		p = 0
	}
	pool := c.Pool
	if pool == "" {
		pool = "avg"
	}
	return fmt.Sprintf("pool=%s/%g;dbcrop=%s;size=%d;profile=%s;project=%s", pool, p, c.DBCrop, c.InputSize, c.Profile, c.Project)
}

func (c Config) specs(base spec.Model) (query, db spec.Model) {
	q := base
	if c.InputSize > 0 {
		rs := q.ResizeShorter
		if rs == 0 {
			rs = q.InputSize
		}
		q.ResizeShorter = int(math.Round(float64(rs) * float64(c.InputSize) / float64(q.InputSize)))
		q.InputSize = c.InputSize
	}
	if c.Pool == "gem" && q.FeatureMapTensor == "" {
		q.FeatureMapTensor = spec.DefaultFeatureMapTensor
	}
	d := q
	if c.DBCrop != "" {
		d.Crop = c.DBCrop
	}
	return q, d
}

func buildIndex(ctx context.Context, ds *Dataset, vs *vectorSet, key string, o Options) (string, *index.DB, *index.Collection, error) {
	dir, err := os.MkdirTemp(o.TempDir, "lookalike-eval-")
	if err != nil {
		return "", nil, nil, fmt.Errorf("eval: temp dir: %w", err)
	}
	iopts := o.Index
	iopts.ExactThreshold = -1
	iopts.NoSync = true
	iopts.SnapshotInterval = -1
	if iopts.Logger == nil {
		iopts.Logger = o.Logger
	}
	db, err := index.Open(dir, &iopts)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, nil, fmt.Errorf("eval: open temp index: %w", err)
	}
	fail := func(err error) (string, *index.DB, *index.Collection, error) {
		db.Close()
		os.RemoveAll(dir)
		return "", nil, nil, err
	}
	dims := 0
	for _, v := range vs.db {
		dims = len(v)
		break
	}
	if dims == 0 {
		return fail(fmt.Errorf("%w: no database image could be embedded", ErrDataset))
	}
	col, err := db.CreateCollection("eval", index.CollectionConfig{Fingerprint: "eval-" + shortHash(key), Dims: dims})
	if err != nil {
		return fail(fmt.Errorf("eval: create collection: %w", err))
	}
	batch := make([]index.Item, 0, 256)
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := col.Upsert(ctx, batch...); err != nil {
			return fmt.Errorf("eval: upsert: %w", err)
		}
		n += len(batch)
		batch = batch[:0]
		if o.Progress != nil {
			o.Progress("index", n, len(vs.db))
		}
		return nil
	}
	for _, it := range ds.Database {
		v, ok := vs.db[it.ID]
		if !ok {
			continue
		}
		batch = append(batch, index.Item{ID: it.ID, Vector: v})
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return fail(err)
			}
		}
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	return dir, db, col, nil
}

func shortHash(s string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return fmt.Sprintf("%08x", h)
}

// searchAll runs every query (in parallel, GOMAXPROCS callers) and aggregates the metrics. It also
// returns each query's first-pass top 10 (before query expansion).
func searchAll(ctx context.Context, ds *Dataset, vs *vectorSet, col *index.Collection, c Config, o Options, exact bool) (Metrics, [][]string, error) {
	groupOf := make(map[string]string, len(ds.Database))
	groupSize := map[string]int{}
	for _, it := range ds.Database {
		if _, ok := vs.db[it.ID]; !ok {
			continue
		}
		groupOf[it.ID] = it.Group
		if it.Group != "" {
			groupSize[it.Group]++
		}
	}
	rankings := make([][]string, len(ds.Queries))
	tops := make([][]string, len(ds.Queries))
	bests := make([]float64, len(ds.Queries))
	stage := "search (hnsw)"
	if exact {
		stage = "search (exact)"
	}
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	workers := runtime.GOMAXPROCS(0)
	t0 := time.Now()
	done := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ids, top, best, err := runQuery(ctx, ds.Queries[i], ds.IncludeSelf, vs, col, c, o.Depth, exact)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				rankings[i], tops[i], bests[i] = ids, top, best
				done++
				if o.Progress != nil && (done%100 == 0 || done == len(ds.Queries)) {
					o.Progress(stage, done, len(ds.Queries))
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range ds.Queries {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(t0).Seconds()
	if firstErr != nil {
		return Metrics{}, nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return Metrics{}, nil, err
	}
	m := score(ds, rankings, groupOf, groupSize, o)
	m.Top1Score = scoreStats(bests)
	if elapsed > 0 {
		m.QPS = float64(len(ds.Queries)) / elapsed
	}
	return m, tops, nil
}

// annRecall is the mean recall@10 of plain top-10 HNSW searches (as a server runs them, without
// the deep ranking the metrics need, which widens the beam to the depth) against the exact top 10;
// for a re-ranking configuration, of its top 10 through HNSW against its top 10 through exact search.
func annRecall(ctx context.Context, ds *Dataset, vs *vectorSet, col *index.Collection, c Config, exactTop [][]string) (float64, error) {
	var sum float64
	n := 0
	ef := c.Ef
	for i, q := range ds.Queries {
		if c.reranks() {
			_, top, _, err := runQuery(ctx, q, ds.IncludeSelf, vs, col, c, 10, false)
			if err != nil {
				return 0, err
			}
			if top != nil {
				sum += Overlap(top, exactTop[i], 10)
				n++
			}
			continue
		}
		vec := vs.queries[q.ID]
		if q.Self != "" {
			vec = vs.db[q.Self]
		}
		if vec == nil {
			continue
		}
		opts := index.SearchOptions{K: 10, Ef: ef}
		if q.Self != "" && !ds.IncludeSelf {
			opts.ExcludeIDs = []string{q.Self}
		}
		res, err := col.Search(ctx, vec, opts)
		if err != nil {
			return 0, fmt.Errorf("eval: search %s: %w", q.ID, err)
		}
		ids := make([]string, len(res))
		for j, r := range res {
			ids[j] = r.ID
		}
		sum += Overlap(ids, exactTop[i], 10)
		n++
	}
	return sum / float64(max(n, 1)), nil
}

// runQuery returns the ranked ids of one query (nil when its image could not be embedded).
func runQuery(ctx context.Context, q Query, includeSelf bool, vs *vectorSet, col *index.Collection, c Config, depth int, exact bool) (ranking, top10 []string, best float64, err error) {
	vec := vs.queries[q.ID]
	if q.Self != "" {
		vec = vs.db[q.Self]
	}
	best = math.NaN()
	if vec == nil {
		return nil, nil, best, nil
	}
	opts := index.SearchOptions{K: depth, Ef: c.Ef, Exact: exact, Rerank: c.Rerank}
	if q.Self != "" && !includeSelf {
		opts.ExcludeIDs = []string{q.Self}
	}
	var res []index.Result
	if q.Self != "" && c.reranks() && !c.SelfAsVector {
		res, err = similar(ctx, col, q.Self, includeSelf, opts)
	} else {
		res, err = col.Search(ctx, vec, opts)
	}
	if err != nil {
		return nil, nil, best, fmt.Errorf("eval: search %s: %w", q.ID, err)
	}
	for _, r := range res[:min(10, len(res))] {
		top10 = append(top10, r.ID)
	}
	for _, r := range res {
		if r.ID != q.Self {
			best = float64(r.Score)
			break
		}
	}
	if c.reranks() {
		// The index ranked the final list; the first pass is internal to it.
		return ids(res), top10, best, nil
	}
	if c.QE > 0 && len(res) > 0 {
		sum := make([]float32, len(vec))
		copy(sum, vec)
		for _, r := range res[:min(c.QE, len(res))] {
			for j, x := range vs.db[r.ID] {
				sum[j] += x
			}
		}
		if res, err = col.Search(ctx, sum, opts); err != nil {
			return nil, nil, best, fmt.Errorf("eval: search %s (query expansion): %w", q.ID, err)
		}
	}
	return ids(res), top10, best, nil
}

// score turns rankings into metrics.
func score(ds *Dataset, rankings [][]string, groupOf map[string]string, groupSize map[string]int, o Options) Metrics {
	m := Metrics{PrecisionAtK: map[string]float64{}, RecallAtK: map[string]float64{}, MAPAtK: map[string]float64{}}
	maxK := slicesMax(o.Ks)
	var ns, knn, apSum float64
	type acc struct {
		n               int
		prec, ap, knnOK float64
	}
	groups := map[string]*acc{}
	n := float64(len(ds.Queries))
	for i, q := range ds.Queries {
		pos, junk := q.Positives, q.Junk
		nPos := len(pos)
		if pos == nil && junk == nil {
			nPos = groupSize[q.Group]
			if q.Self != "" && !ds.IncludeSelf {
				nPos--
			}
			pos = nil
		}
		rel := make([]Relevance, len(rankings[i]))
		labels := make([]string, len(rankings[i]))
		for j, id := range rankings[i] {
			labels[j] = groupOf[id]
			switch {
			case junk[id]:
				rel[j] = Junk
			case pos != nil && pos[id]:
				rel[j] = Relevant
			case pos == nil && q.Group != "" && groupOf[id] == q.Group:
				rel[j] = Relevant
			}
		}
		ap := AveragePrecision(rel, nPos)
		if ds.OxfordAP {
			ap = OxfordAP(rel, nPos)
		} else if ds.KNN {
			ap = APAtK(rel, nPos, o.Depth)
		}
		apSum += ap
		m.APs = append(m.APs, ap)
		for _, k := range o.Ks {
			key := strconv.Itoa(k)
			m.PrecisionAtK[key] += PrecisionAtK(rel, k) / n
			m.RecallAtK[key] += RecallAtK(rel, nPos, k) / n
			m.MAPAtK[key] += APAtK(rel, nPos, k) / n
		}
		if ds.NS {
			ns += NSScore(rel)
			m.NSs = append(m.NSs, NSScore(rel))
		}
		if ds.KNN {
			ok := 0.0
			if MajorityLabel(labels, o.KNN) == q.Group {
				ok = 1
			}
			knn += ok
			g := groups[q.Group]
			if g == nil {
				g = &acc{}
				groups[q.Group] = g
			}
			g.n++
			g.prec += PrecisionAtK(rel, maxK)
			g.ap += APAtK(rel, nPos, maxK)
			g.knnOK += ok
		}
	}
	m.MAP = apSum / n
	if ds.NS {
		v := ns / n
		m.NSScore = &v
	}
	if ds.KNN {
		v := knn / n
		m.KNNAccuracy = &v
		m.PerGroup = map[string]GroupMetrics{}
		for g, a := range groups {
			d := float64(a.n)
			m.PerGroup[g] = GroupMetrics{Queries: a.n, Precision: a.prec / d, MAPAtK: a.ap / d, KNN: a.knnOK / d}
		}
	}
	return m
}

func slicesMax(ks []int) int {
	m := 0
	for _, k := range ks {
		m = max(m, k)
	}
	return m
}

// SortedKs returns the keys of a metric map in numeric order.
func SortedKs(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, _ := strconv.Atoi(keys[i])
		b, _ := strconv.Atoi(keys[j])
		return a < b
	})
	return keys
}
