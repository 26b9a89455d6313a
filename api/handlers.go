package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/rerank"
)

func (s *Server) requestContext(c *fiber.Ctx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.UserContext(), s.cfg.Server.WriteTimeout)
}

func (s *Server) collection(c *fiber.Ctx) (*index.Collection, error) {
	name, err := pathParam(c, "c")
	if err != nil {
		return nil, err
	}
	col, err := s.db.Collection(s.db.Resolve(name))
	if err != nil {
		if errors.Is(err, index.ErrNotFound) {
			return nil, errorf(http.StatusNotFound, "collection_not_found", "no collection named %q", name)
		}
		return nil, err
	}
	return col, nil
}

// embeddable returns the collection when this server makes vectors of its fingerprint: one of its
// models, under one of its descriptor profiles (engineOf(col) embeds for it).
func (s *Server) embeddable(c *fiber.Ctx) (*index.Collection, error) {
	col, err := s.collection(c)
	if err != nil {
		return nil, err
	}
	info := s.eng.Info()
	if _, ok := s.engineFor(col.Fingerprint()); !ok {
		return nil, errorf(http.StatusConflict, "fingerprint_mismatch",
			"collection %q holds embeddings of model fingerprint %s; this server embeds with %s (profile %s) or another profile of that model",
			col.Name(), col.Fingerprint(), info.Fingerprint, info.Profile).
			with("collection_fingerprint", col.Fingerprint()).with("server_fingerprint", info.Fingerprint)
	}
	return col, nil
}

// itemTarget resolves the {c} and {id} path parameters.
func (s *Server) itemTarget(c *fiber.Ctx) (*index.Collection, string, error) {
	col, err := s.collection(c)
	if err != nil {
		return nil, "", err
	}
	id, err := pathParam(c, "id")
	if err != nil {
		return nil, "", err
	}
	return col, id, nil
}

// itemErr turns index.ErrNotFound for an item into the API's 404; other errors pass through.
func itemErr(err error, col *index.Collection, id string) error {
	if errors.Is(err, index.ErrNotFound) {
		return errorf(http.StatusNotFound, "item_not_found", "no item %q in collection %q", id, col.Name())
	}
	return err
}

func thumbnailURL(col, id string) string {
	return "/v1/collections/" + url.PathEscape(col) + "/items/" + url.PathEscape(id) + "/thumbnail"
}

// --- collections ----------------------------------------------------------------------------

type collectionJSON struct {
	Name           string `json:"name"`
	Count          int    `json:"count"`
	Dims           int    `json:"dims"`
	Fingerprint    string `json:"fingerprint"`
	Model          string `json:"model"`
	Profile        string `json:"profile"`
	Projection     string `json:"projection,omitempty"`
	Levels         int    `json:"levels"`
	M              int    `json:"m"`
	EfConstruction int    `json:"ef_construction"`
	EfSearch       int    `json:"ef_search"`
	DiskBytes      int64  `json:"disk_bytes"`
	// Coverage: in cluster mode, how many shards the count covers when some did not answer.
	Coverage *clusterCoverage `json:"coverage,omitempty"`
}

func (s *Server) collectionJSON(ci index.CollectionInfo) collectionJSON {
	var info embed.Info
	if e, ok := s.engineFor(ci.Fingerprint); ok {
		info = e.Info()
	}
	return collectionJSON{Name: ci.Name, Count: ci.Count, Dims: ci.Dims, Fingerprint: ci.Fingerprint, Model: info.ModelID, Profile: info.Profile, Projection: info.Projection,
		Levels: ci.Levels, M: ci.M, EfConstruction: ci.EfConstruction, EfSearch: ci.EfSearch, DiskBytes: ci.DiskBytes}
}

func (s *Server) handleListCollections(c *fiber.Ctx) error {
	ctx, cancel := s.requestContext(c)
	defer cancel()
	infos, cov, err := s.collectionInfos(ctx, s.db.Collections())
	if err != nil {
		return err
	}
	out := []collectionJSON{}
	for i, ci := range infos {
		cj := s.collectionJSON(ci)
		cj.Coverage = cov[i]
		out = append(out, cj)
	}
	return c.JSON(fiber.Map{"collections": out})
}

func (s *Server) handleGetCollection(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	infos, cov, err := s.collectionInfos(ctx, []index.CollectionInfo{col.Info()})
	if err != nil {
		return err
	}
	if len(infos) == 0 {
		return errorf(http.StatusNotFound, "collection_not_found", "the cluster does not serve collection %q", col.Name())
	}
	cj := s.collectionJSON(infos[0])
	cj.Coverage = cov[0]
	return c.JSON(cj)
}

func (s *Server) handleCreateCollection(c *fiber.Ctx) error {
	var req struct {
		Name           string `json:"name"`
		M              int    `json:"m"`
		EfConstruction int    `json:"ef_construction"`
		EfSearch       int    `json:"ef_search"`
		Profile        string `json:"profile"`
	}
	if mediaType(c) != fiber.MIMEApplicationJSON {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_content_type", "send application/json")
	}
	if err := decodeJSONBody(c.Body(), &req); err != nil {
		return err
	}
	switch {
	case req.M != 0 && (req.M < 2 || req.M > 128):
		return badRequest("m must be in 2..128")
	case req.EfConstruction != 0 && (req.EfConstruction < 8 || req.EfConstruction > 4096):
		return badRequest("ef_construction must be in 8..4096")
	case req.EfSearch != 0 && (req.EfSearch < 1 || req.EfSearch > index.MaxEf):
		return badRequest("ef_search must be in 1..%d", index.MaxEf)
	}
	_, fp, err := s.eng.Info().ProfileFingerprint(req.Profile)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid_profile", "%s", err).with("parameter", "profile")
	}
	cfg := index.CollectionConfig{
		Fingerprint: fp, Dims: s.eng.Info().Dims,
		M: orDefault(req.M, s.cfg.Index.M), EfConstruction: orDefault(req.EfConstruction, s.cfg.Index.EfConstruction),
		EfSearch: orDefault(req.EfSearch, s.cfg.Index.EfSearch),
	}
	col, err := s.db.CreateCollection(req.Name, cfg)
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(s.collectionJSON(col.Info()))
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func (s *Server) handleDropCollection(c *fiber.Ctx) error {
	name, err := pathParam(c, "c")
	if err != nil {
		return err
	}
	if err := s.db.DropCollection(s.db.Resolve(name)); err != nil {
		if errors.Is(err, index.ErrNotFound) {
			return errorf(http.StatusNotFound, "collection_not_found", "no collection named %q", name)
		}
		return err
	}
	return c.JSON(fiber.Map{"dropped": name})
}

// --- items ----------------------------------------------------------------------------------

// The ingest routes (add, batch) and the item shape are in items.go.

// embedAdmitted embeds images holding one admission slot, so inference never bypasses admission
// control. A per-image failure is returned as the error.
func (s *Server) embedAdmitted(ctx context.Context, col *index.Collection, imgs ...embed.Image) ([]embed.Embedding, error) {
	release, err := s.admit.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release() // also when Embed panics (recoverPanic): the slot must come back
	embs, err := s.engineOf(col).Embed(ctx, imgs)
	if err != nil {
		return nil, err
	}
	for _, e := range embs {
		if e.Err != nil {
			return nil, e.Err
		}
	}
	return embs, nil
}

func (s *Server) observeEmbedding(t embed.Timings) {
	s.metrics.stage.WithLabelValues("decode").Observe(t.Decode.Seconds())
	s.metrics.stage.WithLabelValues("preprocess").Observe(t.Preprocess.Seconds())
	s.metrics.stage.WithLabelValues("inference").Observe(t.Inference.Seconds())
}

func (s *Server) handleGetItem(c *fiber.Ctx) error {
	col, id, err := s.itemTarget(c)
	if err != nil {
		return err
	}
	if cm := s.cluster.Load(); cm != nil {
		return cm.get(s, c, col, id)
	}
	withVector, err := queryBool(c, "with_vector")
	if err != nil {
		return err
	}
	it, err := col.Get(id)
	if err != nil {
		return itemErr(err, col, id)
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	c.Set(fiber.HeaderETag, etag(it.Version))
	out := itemDetailJSON{
		itemJSON: itemJSON{ID: it.ID, Version: it.Version, Metadata: metadataOrEmpty(it.Metadata), ThumbnailURL: thumbnailURL(col.Name(), it.ID),
			Fingerprint: col.Fingerprint(), Dims: len(it.Vector), UpdatedAt: it.UpdatedAt},
		Labels: s.labelsFor(ctx, col, it),
	}
	if withVector {
		out.Vector = it.Vector
	}
	return c.JSON(out)
}

type labelJSON struct {
	Name string  `json:"name"`
	Prob float32 `json:"prob"`
}

type itemDetailJSON struct {
	itemJSON
	Labels []labelJSON `json:"labels"`
}

// labelsFor returns the model's top ImageNet labels for a stored item. Items keep a thumbnail, not
// their labels, so the labels come from one inference on the thumbnail, cached per item version.
// It never waits for an inference slot: under load the item page simply shows no labels.
func (s *Server) labelsFor(ctx context.Context, col *index.Collection, it index.Item) []labelJSON {
	out := []labelJSON{}
	eng, ok := s.engineFor(col.Fingerprint())
	if !ok {
		return out
	}
	key := col.Name() + "\x00" + it.ID + "\x00" + it.UpdatedAt.String()
	s.labelMu.Lock()
	cached, ok := s.labelCache[key]
	s.labelMu.Unlock()
	if ok {
		return cached
	}
	thumb, err := col.Thumbnail(it.ID)
	if err != nil || len(thumb) == 0 {
		return out
	}
	release, ok := s.admit.tryAcquire()
	if !ok {
		return out
	}
	// labels are the model's, whatever the collection's profile: the cheapest profile gives them
	embs, err := eng.Embed(ctx, []embed.Image{{Data: thumb, Profile: spec.ProfileFast}})
	release()
	if err != nil || embs[0].Err != nil {
		return out
	}
	for _, l := range embs[0].Labels {
		out = append(out, labelJSON{Name: l.Name, Prob: l.Prob})
	}
	s.labelMu.Lock()
	if len(s.labelCache) >= 4096 {
		clear(s.labelCache) // a crude bound: labels are cheap to recompute
	}
	s.labelCache[key] = out
	s.labelMu.Unlock()
	return out
}

func (s *Server) handleThumbnail(c *fiber.Ctx) error {
	col, id, err := s.itemTarget(c)
	if err != nil {
		return err
	}
	if cm := s.cluster.Load(); cm != nil {
		return cm.image(s, c, col, id, false)
	}
	thumb, err := col.Thumbnail(id)
	if err != nil {
		return itemErr(err, col, id)
	}
	c.Set(fiber.HeaderContentType, "image/jpeg")
	c.Set(fiber.HeaderCacheControl, "private, max-age=60")
	return c.Send(thumb)
}

func (s *Server) handleDeleteItem(c *fiber.Ctx) error {
	col, id, err := s.itemTarget(c)
	if err != nil {
		return err
	}
	if cm := s.cluster.Load(); cm != nil {
		return cm.delete(s, c, col, id)
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	n, err := col.Delete(ctx, id)
	if err != nil {
		return err
	}
	if n == 0 {
		return errorf(http.StatusNotFound, "item_not_found", "no item %q in collection %q", id, col.Name())
	}
	return c.JSON(fiber.Map{"deleted": n})
}

// --- search ---------------------------------------------------------------------------------

type resultJSON struct {
	ID           string          `json:"id"`
	Score        float32         `json:"score"`
	Metadata     json.RawMessage `json:"metadata"`
	ThumbnailURL string          `json:"thumbnail_url"`
	// Weak: the score is below WeakBelow, so this is the nearest item rather than a close match;
	// the UI lists such results apart ("no close match") and does not count them as matches.
	Weak bool `json:"weak"`
}

type searchResponse struct {
	Results []resultJSON `json:"results"`
	// WeakBelow is quality.min_score mapped onto the collection's descriptor profile: the score
	// under which the quality monitor counts a search as "no good match".
	WeakBelow  float32            `json:"weak_below"`
	Model      string             `json:"model"`
	Collection string             `json:"collection"` // the concrete generation that answered
	Generation int                `json:"generation"`
	TimingsMS  map[string]float64 `json:"timings_ms"`
	NextCursor string             `json:"next_cursor"`
	Rerank     string             `json:"rerank"`
	// Canary is set when the search was routed to a rebuild's shadow (lifecycle.canary_share).
	Canary bool `json:"canary,omitempty"`
	// PhotoID names the query photo of an image search, kept for a while (photos.go).
	PhotoID string `json:"photo_id,omitempty"`
	// Coverage: in cluster mode, how many shards answered when some did not.
	Coverage *clusterCoverage `json:"coverage,omitempty"`
}

// rerankMode is the request's re-ranking, or the endpoint's configured default (index.rerank_search,
// index.rerank_similar; validated at start).
func (s *Server) rerankMode(m rerank.Mode, similar bool) rerank.Mode {
	if m != rerank.ModeDefault {
		return m
	}
	def := s.cfg.Index.RerankSearch
	if similar {
		def = s.cfg.Index.RerankSimilar
	}
	if m, err := rerank.ParseMode(def); err == nil && m != rerank.ModeDefault {
		return m
	}
	return rerank.ModeNone
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s *Server) handleSearch(c *fiber.Ctx) error {
	start := time.Now()
	col, err := s.embeddable(c)
	if err != nil {
		return err
	}
	if cm := s.cluster.Load(); cm != nil {
		return cm.search(s, c, col)
	}
	req, err := parseSearch(c, s.cfg.Limits.MaxK, s.cfg.Limits.DefaultK)
	if err != nil {
		return err
	}
	col = s.canary(col, req)
	// Before the image is embedded: a typo in a filter should not cost an inference.
	if err := checkFilterFields(col, req.filter); err != nil {
		return err
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	query, timings, err := s.searchVector(ctx, col, req)
	if err != nil {
		return err
	}
	out, err := s.runQuery(ctx, col, req, query, "", start, timings)
	if err != nil {
		return err
	}
	if req.Image != nil {
		out.PhotoID = s.photos.put(req.Image)
	}
	return c.JSON(out)
}

// searchVector is queryVector with fresh timings (the stages stay 0 when nothing is embedded).
func (s *Server) searchVector(ctx context.Context, col *index.Collection, req *searchRequest) ([]float32, map[string]float64, error) {
	timings := map[string]float64{"decode": 0, "preprocess": 0, "inference": 0}
	query, err := s.queryVector(ctx, col, req, timings)
	return query, timings, err
}

// queryVector is a search's query: the embedding of its image (timings get the stages), the
// stored vector of its item (which it then excludes from the results), or its raw vector.
func (s *Server) queryVector(ctx context.Context, col *index.Collection, req *searchRequest, timings map[string]float64) ([]float32, error) {
	if req.PhotoID != "" && req.Image == nil {
		img, err := s.keptPhoto(req.PhotoID)
		if err != nil {
			return nil, err
		}
		req.Image = img
	}
	switch {
	case req.Image != nil:
		embs, err := s.embedAdmitted(ctx, col, embed.Image{Data: req.Image, Crop: req.crop})
		if err != nil {
			return nil, err
		}
		s.lifecycleQueries.add(req.Image)
		t := embs[0].Timings
		s.observeEmbedding(t)
		timings["decode"], timings["preprocess"], timings["inference"] = msf(t.Decode), msf(t.Preprocess), msf(t.Inference)
		return embs[0].Vector, nil
	case req.ID != "":
		it, err := col.Get(req.ID)
		if err != nil {
			return nil, itemErr(err, col, req.ID)
		}
		req.ExcludeIDs = append(req.ExcludeIDs, req.ID)
		return it.Vector, nil
	}
	// embeddable() checked the fingerprint, so the collection's dims are the model's.
	if dims := col.Config().Dims; len(req.Vector) != dims {
		return nil, errorf(http.StatusBadRequest, "dimension_mismatch", "vector has %d dimensions, the collection has %d", len(req.Vector), dims)
	}
	return req.Vector, nil
}

func (s *Server) handleSimilar(c *fiber.Ctx) error {
	start := time.Now()
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	if cm := s.cluster.Load(); cm != nil {
		return cm.similar(s, c, col, id)
	}
	req, err := s.parseSimilar(c, id)
	if err != nil {
		return err
	}
	col = s.canary(col, req)
	if err := checkFilterFields(col, req.filter); err != nil {
		return err
	}
	return s.answer(c, col, req, nil, id, start, map[string]float64{"decode": 0, "preprocess": 0, "inference": 0})
}

// parseSimilar reads a similar-items request: the query parameters, for the stored item id.
func (s *Server) parseSimilar(c *fiber.Ctx, id string) (*searchRequest, error) {
	req := &searchRequest{ID: id}
	if err := req.fromQuery(c); err != nil {
		return nil, err
	}
	req.ID = id
	return req, req.validate(s.cfg.Limits.MaxK, s.cfg.Limits.DefaultK)
}

// answer runs the ANN search (by vector, or by stored item when similarTo is set) and writes the
// one response shape search and similar share.
func (s *Server) answer(c *fiber.Ctx, col *index.Collection, req *searchRequest, query []float32, similarTo string, start time.Time, timings map[string]float64) error {
	ctx, cancel := s.requestContext(c)
	defer cancel()
	out, err := s.runQuery(ctx, col, req, query, similarTo, start, timings)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

// runQuery is answer without the HTTP: the one search behind search, similar, recommend and
// their batches.
func (s *Server) runQuery(ctx context.Context, col *index.Collection, req *searchRequest, query []float32, similarTo string, start time.Time, timings map[string]float64) (*searchResponse, error) {
	// One extra result says whether another page exists, asked for only while the next page would
	// still start inside the result window (validate cut this page to end at it at most).
	more := req.offset+req.K < index.MaxK
	fetch := req.K
	if more {
		fetch++
	}
	opts := index.SearchOptions{K: fetch, Ef: req.Ef, Filter: req.filter, Exact: req.Exact, ExcludeIDs: req.ExcludeIDs, Offset: req.offset, MinScore: req.MinScore,
		Rerank: s.rerankMode(req.rerank, similarTo != "")}
	// Diversified pages are cut from one diversified ranking fetched from the top (3x over-fetch),
	// so pages stay consistent with each other. On by default for similar, off for search.
	div := similarTo != ""
	if req.Diversify != nil {
		div = *req.Diversify
	}
	if div {
		opts.K, opts.Offset = min(3*(req.offset+req.K)+1, index.MaxK), 0
	}
	release, err := s.admitSearch(ctx, opts, div)
	if err != nil {
		return nil, err
	}
	defer release()
	// What the answer gets: k-reciprocal re-ranking waits for a state that loads after start-up
	// (read first: the state only ever becomes ready).
	applied := col.RerankApplied(opts.Rerank)
	searchStart := time.Now()
	var res []index.Result
	switch {
	case similarTo != "":
		res, err = col.Similar(ctx, similarTo, opts)
		if errors.Is(err, index.ErrNotFound) {
			return nil, itemErr(err, col, similarTo)
		}
	case req.ID != "":
		// A search by id is a similar search with the search defaults: the stored item (and its
		// k-reciprocal row) is the query, and it is excluded like any other id in exclude_ids.
		res, err = col.Similar(ctx, req.ID, opts)
		if errors.Is(err, index.ErrNotFound) {
			return nil, itemErr(err, col, req.ID)
		}
	default:
		res, err = col.Search(ctx, query, opts)
	}
	if err != nil {
		return nil, err
	}
	searchDur := time.Since(searchStart)
	if similarTo == "" {
		s.quality.Observe(col, query, opts, res)
	}
	if div {
		res = s.diversify(col, res)
		res = res[min(req.offset, len(res)):]
	}
	next := ""
	if len(res) > req.K {
		res = res[:req.K]
		if more {
			next = encodeCursor(req.offset + req.K)
		}
	}
	name := col.Name()
	weak := float32(spec.ThresholdFor(col.Fingerprint(), s.cfg.Quality.MinScore))
	out := searchResponse{Results: make([]resultJSON, 0, len(res)), WeakBelow: weak, Model: s.engineOf(col).Info().ModelID, TimingsMS: timings,
		NextCursor: next, Collection: name, Generation: col.Generation(), Rerank: applied.String()}
	for _, r := range res {
		out.Results = append(out.Results, resultJSON{ID: r.ID, Score: r.Score, Metadata: metadataOrEmpty(r.Metadata), ThumbnailURL: thumbnailURL(name, r.ID),
			Weak: r.Score < weak})
	}
	total := time.Since(start)
	out.Canary = req.canary
	s.observeArm(col, res, total)
	timings["search"], timings["total"] = msf(searchDur), msf(total)
	s.metrics.stage.WithLabelValues("search").Observe(searchDur.Seconds())
	s.metrics.stage.WithLabelValues("total").Observe(total.Seconds())
	s.stats.query(timings["inference"] > 0, total)
	return &out, nil
}

// --- fields and stats -----------------------------------------------------------------------

// /fields scans the collection, so its work and its answer are bounded; a field whose values or
// counts were cut by these bounds says so ("truncated": true).
const (
	fieldsScanLimit     = 200_000 // items scanned per answer
	fieldsTrackedValues = 500     // distinct values counted per keyword field
	fieldsListedValues  = 50      // most common values listed per keyword field
	fieldsCacheTTL      = 30 * time.Second
)

type fieldJSON struct {
	Name   string   `json:"name"`
	Type   string   `json:"type"`
	Values []string `json:"values,omitempty"`
	Min    *float64 `json:"min,omitempty"`
	Max    *float64 `json:"max,omitempty"`
	Count  int      `json:"count"`
	// Truncated: Values are not all the field's values (more than fieldsListedValues, or more than
	// fieldsTrackedValues were seen), or the scan stopped at fieldsScanLimit items, so counts and
	// ranges cover only the items scanned.
	Truncated bool `json:"truncated"`
}

type fieldsCacheEntry struct {
	count  int
	at     time.Time
	fields []fieldJSON
}

// fieldAcc accumulates one metadata field over the scan.
type fieldAcc struct {
	values   map[string]int
	min, max float64
	numeric  int
	keyword  int
	dropped  bool // a value went uncounted: fieldsTrackedValues distinct ones were already tracked
}

func (a *fieldAcc) addKeyword(v string) {
	a.keyword++
	if _, ok := a.values[v]; ok || len(a.values) < fieldsTrackedValues {
		a.values[v]++
	} else {
		a.dropped = true
	}
}

func (a *fieldAcc) addNumber(x float64) {
	if a.numeric == 0 || x < a.min {
		a.min = x
	}
	if a.numeric == 0 || x > a.max {
		a.max = x
	}
	a.numeric++
}

// handleFields summarises the collection's metadata fields for filter controls: keyword fields with
// their most common values, numeric fields with their range. It scans the collection, so results
// are cached until the item count changes or fieldsCacheTTL passes.
func (s *Server) handleFields(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	info := col.Info()
	key := info.Name
	if e, ok := s.fieldsCache.Load(key); ok {
		entry := e.(fieldsCacheEntry)
		if entry.count == info.Count && time.Since(entry.at) < fieldsCacheTTL {
			return c.JSON(fiber.Map{"fields": entry.fields})
		}
	}
	if cm := s.cluster.Load(); cm != nil {
		return cm.fields(s, c, col)
	}
	accs, complete, err := scanFields(func(cursor string) ([]index.Item, string, error) { return col.List(cursor, 1000) }, fieldsScanLimit)
	if err != nil {
		return err
	}
	fields := summariseFields(accs, complete)
	s.fieldsCache.Store(key, fieldsCacheEntry{count: info.Count, at: time.Now(), fields: fields})
	return c.JSON(fiber.Map{"fields": fields})
}

// scanFields reads the metadata of up to limit items, a page of list at a time; complete is false
// when it stopped before the end.
func scanFields(list func(cursor string) ([]index.Item, string, error), limit int) (accs map[string]*fieldAcc, complete bool, err error) {
	accs = map[string]*fieldAcc{}
	cursor := ""
	for scanned := 0; ; {
		if scanned >= limit {
			return accs, false, nil
		}
		items, next, err := list(cursor)
		if err != nil {
			return nil, false, err
		}
		for _, it := range items {
			var obj map[string]any
			if json.Unmarshal(it.Metadata, &obj) != nil {
				continue
			}
			for k, v := range obj {
				a := accs[k]
				if a == nil {
					a = &fieldAcc{values: map[string]int{}}
					accs[k] = a
				}
				switch x := v.(type) {
				case float64:
					a.addNumber(x)
				case string:
					a.addKeyword(x)
				case []any:
					for _, e := range x {
						if str, ok := e.(string); ok {
							a.addKeyword(str)
						}
					}
				}
			}
		}
		scanned += len(items)
		if next == "" {
			return accs, true, nil
		}
		cursor = next
	}
}

// summariseFields turns the accumulators into the response, sorted by name.
func summariseFields(accs map[string]*fieldAcc, complete bool) []fieldJSON {
	fields := []fieldJSON{}
	for name, a := range accs {
		if a.numeric > 0 && a.numeric >= a.keyword {
			lo, hi := a.min, a.max
			fields = append(fields, fieldJSON{Name: name, Type: "number", Min: &lo, Max: &hi, Count: a.numeric, Truncated: !complete})
			continue
		}
		if a.keyword == 0 {
			continue
		}
		vals := make([]string, 0, len(a.values))
		for v := range a.values {
			vals = append(vals, v)
		}
		sort.Slice(vals, func(i, j int) bool {
			if a.values[vals[i]] != a.values[vals[j]] {
				return a.values[vals[i]] > a.values[vals[j]]
			}
			return vals[i] < vals[j]
		})
		cut := a.dropped || !complete || len(vals) > fieldsListedValues
		vals = vals[:min(len(vals), fieldsListedValues)]
		fields = append(fields, fieldJSON{Name: name, Type: "keyword", Values: vals, Count: a.keyword, Truncated: cut})
	}
	sort.Slice(fields, func(i, j int) bool { return fields[i].Name < fields[j].Name })
	return fields
}

func (s *Server) handleStats(c *fiber.Ctx) error {
	info := s.eng.Info()
	ctx, cancel := s.requestContext(c)
	defer cancel()
	infos, cov, err := s.collectionInfos(ctx, s.db.Collections())
	if err != nil {
		return err
	}
	cols := []fiber.Map{}
	for i, ci := range infos {
		col := fiber.Map{"name": ci.Name, "count": ci.Count, "levels": ci.Levels, "dims": ci.Dims, "disk_bytes": ci.DiskBytes}
		if cov[i] != nil {
			col["coverage"] = cov[i]
		}
		cols = append(cols, col)
	}
	series, totals := s.stats.snapshot()
	out := fiber.Map{
		"uptime_s":    int64(time.Since(s.started).Seconds()),
		"model":       fiber.Map{"id": info.ModelID, "fingerprint": info.Fingerprint, "device": info.Device, "dims": info.Dims},
		"collections": cols,
		"window_s":    int64(s.cfg.Server.StatsWindow.Seconds()),
		"series":      series,
		"totals":      totals,
	}
	if q := qualityJSON(s.quality.Summary()); q != nil {
		out["quality"] = q
	}
	return c.JSON(out)
}
