package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/ingest"
)

func (s *Server) requestContext(c *fiber.Ctx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.UserContext(), s.cfg.Server.WriteTimeout)
}

func (s *Server) collection(c *fiber.Ctx) (*index.Collection, error) {
	name, err := pathParam(c, "c")
	if err != nil {
		return nil, err
	}
	col, err := s.db.Collection(name)
	if err != nil {
		if errors.Is(err, index.ErrNotFound) {
			return nil, errorf(http.StatusNotFound, "collection_not_found", "no collection named %q", name)
		}
		return nil, err
	}
	return col, nil
}

// embeddable returns the collection when vectors of this server's model may enter or query it.
func (s *Server) embeddable(c *fiber.Ctx) (*index.Collection, error) {
	col, err := s.collection(c)
	if err != nil {
		return nil, err
	}
	if fp := s.eng.Info().Fingerprint; col.Fingerprint() != fp {
		return nil, errorf(http.StatusConflict, "fingerprint_mismatch",
			"collection %q holds embeddings of model fingerprint %s; this server embeds with %s", col.Name(), col.Fingerprint(), fp).
			with("collection_fingerprint", col.Fingerprint()).with("server_fingerprint", fp)
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
	Levels         int    `json:"levels"`
	M              int    `json:"m"`
	EfConstruction int    `json:"ef_construction"`
	EfSearch       int    `json:"ef_search"`
	DiskBytes      int64  `json:"disk_bytes"`
}

func (s *Server) collectionJSON(ci index.CollectionInfo) collectionJSON {
	model := ""
	if ci.Fingerprint == s.eng.Info().Fingerprint {
		model = s.eng.Info().ModelID
	}
	return collectionJSON{Name: ci.Name, Count: ci.Count, Dims: ci.Dims, Fingerprint: ci.Fingerprint, Model: model,
		Levels: ci.Levels, M: ci.M, EfConstruction: ci.EfConstruction, EfSearch: ci.EfSearch, DiskBytes: ci.DiskBytes}
}

func (s *Server) handleListCollections(c *fiber.Ctx) error {
	out := []collectionJSON{}
	for _, ci := range s.db.Collections() {
		out = append(out, s.collectionJSON(ci))
	}
	return c.JSON(fiber.Map{"collections": out})
}

func (s *Server) handleGetCollection(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	return c.JSON(s.collectionJSON(col.Info()))
}

func (s *Server) handleCreateCollection(c *fiber.Ctx) error {
	var req struct {
		Name           string `json:"name"`
		M              int    `json:"m"`
		EfConstruction int    `json:"ef_construction"`
		EfSearch       int    `json:"ef_search"`
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
	case req.EfSearch != 0 && (req.EfSearch < 1 || req.EfSearch > 10_000):
		return badRequest("ef_search must be in 1..10000")
	}
	cfg := index.CollectionConfig{
		Fingerprint: s.eng.Info().Fingerprint, Dims: s.eng.Info().Dims,
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
	if err := s.db.DropCollection(name); err != nil {
		if errors.Is(err, index.ErrNotFound) {
			return errorf(http.StatusNotFound, "collection_not_found", "no collection named %q", name)
		}
		return err
	}
	return c.JSON(fiber.Map{"dropped": name})
}

// --- items ----------------------------------------------------------------------------------

type itemJSON struct {
	ID           string          `json:"id"`
	Metadata     json.RawMessage `json:"metadata"`
	ThumbnailURL string          `json:"thumbnail_url"`
	Fingerprint  string          `json:"fingerprint,omitempty"`
	Dims         int             `json:"dims,omitempty"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

func metadataOrEmpty(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return json.RawMessage("{}")
	}
	return m
}

func (s *Server) parseItem(c *fiber.Ctx) (*itemRequest, error) {
	req := &itemRequest{}
	switch mt := mediaType(c); mt {
	case fiber.MIMEApplicationJSON:
		if err := decodeJSONBody(c.Body(), req); err != nil {
			return nil, err
		}
		if req.ImageB64 == "" {
			return nil, badRequest("field image (base64) is required")
		}
		img, err := decodeBase64Image(req.ImageB64)
		if err != nil {
			return nil, err
		}
		req.Image, req.ImageB64 = img, ""
	case fiber.MIMEMultipartForm:
		form, err := c.MultipartForm()
		if err != nil {
			return nil, badRequest("malformed multipart body: %v", err)
		}
		files := form.File["image"]
		if len(files) == 0 {
			return nil, badRequest("multipart field image (a file) is required")
		}
		if req.Image, err = readFormFile(files[0]); err != nil {
			return nil, err
		}
		req.fileName = files[0].Filename
		if v := form.Value["id"]; len(v) > 0 {
			req.ID = strings.TrimSpace(v[0])
		}
		if v := form.Value["metadata"]; len(v) > 0 {
			req.Metadata = json.RawMessage(v[0])
		}
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, "unsupported_content_type",
			"send multipart/form-data (image, id, metadata) or application/json (image as base64)")
	}
	if req.ID == "" && req.fileName != "" {
		base := req.fileName[strings.LastIndexAny(req.fileName, `/\`)+1:]
		if dot := strings.LastIndexByte(base, '.'); dot > 0 {
			base = base[:dot]
		}
		req.ID = base
	}
	req.ID = strings.Clone(req.ID)
	if err := validateID(req.ID, s.cfg.Limits.MaxIDBytes); err != nil {
		return nil, err
	}
	var err error
	if req.Metadata, err = validateMetadata(req.Metadata, s.cfg.Limits.MaxMetadataBytes); err != nil {
		return nil, err
	}
	return req, nil
}

type nearDuplicate struct {
	ID    string  `json:"id"`
	Score float32 `json:"score"`
	Tier  string  `json:"tier"` // exact or near (intel.go)
}

type addResult struct {
	Item          *itemJSON      `json:"item,omitempty"`
	NearDuplicate *nearDuplicate `json:"near_duplicate_of"`
	// MergedInto is set when on_duplicate=merge folded the item into an existing one (Item is that one).
	MergedInto string `json:"merged_into,omitempty"`
}

// storeItems embeds, thumbnails and upserts items; per-item errors come back in errs. onDup is the
// duplicate policy (allow, reject, merge: intel.go).
func (s *Server) storeItems(ctx context.Context, col *index.Collection, reqs []*itemRequest, onDup string) ([]addResult, []error, error) {
	release, err := s.admit.acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer release()
	results := make([]addResult, len(reqs))
	errs := make([]error, len(reqs))
	imgs := make([]embed.Image, len(reqs))
	for i, r := range reqs {
		imgs[i] = embed.Image{Data: r.Image}
	}
	s.metrics.batchSize.Observe(float64(len(imgs)))
	embs, err := s.eng.Embed(ctx, imgs)
	if err != nil {
		return nil, nil, err
	}
	items := make([]index.Item, 0, len(reqs))
	pos := make([]int, 0, len(reqs))
	now := time.Now().UTC()
	for i, r := range reqs {
		if embs[i].Err != nil {
			errs[i] = embs[i].Err
			continue
		}
		s.observeEmbedding(embs[i].Timings)
		thumb, err := embed.Thumbnail(r.Image, s.cfg.Limits.ThumbnailSize, s.cfg.Limits.ThumbnailQuality, s.cfg.Limits.MaxPixels)
		if err != nil {
			errs[i] = err
			continue
		}
		if nd := s.findDuplicate(ctx, col, r.ID, embs[i].Vector, thumb); nd != nil {
			results[i].NearDuplicate = nd
			s.metrics.nearDuplicate.Inc()
			switch onDup {
			case dupReject:
				errs[i] = errorf(http.StatusConflict, "duplicate", "item %q is a %s duplicate of %q (cosine %.3f); on_duplicate=reject", r.ID, nd.Tier, nd.ID, nd.Score).
					with("near_duplicate_of", nd)
				continue
			case dupMerge:
				merged, err := mergeInto(ctx, col, nd.ID, r.Metadata)
				if err != nil {
					errs[i] = err
					continue
				}
				results[i].MergedInto = merged.ID
				results[i].Item = &itemJSON{ID: merged.ID, Metadata: metadataOrEmpty(merged.Metadata), ThumbnailURL: thumbnailURL(col.Name(), merged.ID),
					Fingerprint: col.Fingerprint(), Dims: len(merged.Vector), UpdatedAt: merged.UpdatedAt}
				continue
			}
		}
		items = append(items, index.Item{ID: r.ID, Vector: embs[i].Vector, Metadata: r.Metadata, Thumbnail: thumb,
			ContentHash: ingest.ContentHash(r.Image, r.Metadata), UpdatedAt: now})
		pos = append(pos, i)
	}
	if len(items) > 0 {
		if err := col.Upsert(ctx, items...); err != nil {
			if !errors.Is(err, index.ErrInvalidItem) || len(items) == 1 {
				if errors.Is(err, index.ErrInvalidItem) {
					errs[pos[0]] = err
					items = items[:0]
				} else {
					return nil, nil, err
				}
			} else {
				// Find the bad item without failing the good ones.
				kept := items[:0]
				keptPos := pos[:0]
				for j, it := range items {
					if err := col.Upsert(ctx, it); err != nil {
						if !errors.Is(err, index.ErrInvalidItem) {
							return nil, nil, err
						}
						errs[pos[j]] = err
						continue
					}
					kept = append(kept, it)
					keptPos = append(keptPos, pos[j])
				}
				items, pos = kept, keptPos
			}
		}
	}
	info := s.eng.Info()
	for j, it := range items {
		results[pos[j]].Item = &itemJSON{ID: it.ID, Metadata: metadataOrEmpty(it.Metadata), ThumbnailURL: thumbnailURL(col.Name(), it.ID),
			Fingerprint: info.Fingerprint, Dims: info.Dims, UpdatedAt: it.UpdatedAt}
		s.metrics.ingested.WithLabelValues("stored").Inc()
	}
	for _, e := range errs {
		if e != nil {
			s.metrics.ingested.WithLabelValues("failed").Inc()
		}
	}
	return results, errs, nil
}

// embedAdmitted embeds images holding one admission slot, so inference never bypasses admission
// control. A per-image failure is returned as the error.
func (s *Server) embedAdmitted(ctx context.Context, imgs ...embed.Image) ([]embed.Embedding, error) {
	release, err := s.admit.acquire(ctx)
	if err != nil {
		return nil, err
	}
	embs, err := s.eng.Embed(ctx, imgs)
	release()
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

func (s *Server) handleAddItem(c *fiber.Ctx) error {
	col, err := s.embeddable(c)
	if err != nil {
		return err
	}
	req, err := s.parseItem(c)
	if err != nil {
		return err
	}
	onDup, err := s.duplicatePolicy(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	results, errs, err := s.storeItems(ctx, col, []*itemRequest{req}, onDup)
	if err != nil {
		return err
	}
	if errs[0] != nil {
		return errs[0]
	}
	if results[0].MergedInto != "" {
		return c.Status(http.StatusOK).JSON(results[0])
	}
	return c.Status(http.StatusCreated).JSON(results[0])
}

// handleBatch adds many items: multipart parts named image (ids from repeated id fields in order,
// else the file names; metadata from repeated metadata fields in order), or NDJSON lines
// {"id","image","metadata"}. One bad item never fails the others.
func (s *Server) handleBatch(c *fiber.Ctx) error {
	col, err := s.embeddable(c)
	if err != nil {
		return err
	}
	type lineResult struct {
		ID            string         `json:"id"`
		Status        int            `json:"status"`
		Item          *itemJSON      `json:"item,omitempty"`
		NearDuplicate *nearDuplicate `json:"near_duplicate_of,omitempty"`
		MergedInto    string         `json:"merged_into,omitempty"`
		Error         *Error         `json:"error,omitempty"`
	}
	onDup, err := s.duplicatePolicy(c)
	if err != nil {
		return err
	}
	var reqs []*itemRequest
	var out []lineResult
	var parseErrs []*Error
	addParsed := func(r *itemRequest, perr error) {
		if perr != nil {
			e := classify(perr)
			out = append(out, lineResult{ID: r.ID, Status: e.Status, Error: e})
			parseErrs = append(parseErrs, e)
			return
		}
		reqs = append(reqs, r)
		out = append(out, lineResult{ID: r.ID})
	}
	switch mt := mediaType(c); mt {
	case "application/x-ndjson", "application/jsonl", "application/json":
		for n, line := range bytes.Split(c.Body(), []byte("\n")) {
			line = bytes.TrimSpace(line)
			if len(line) == 0 {
				continue
			}
			r := &itemRequest{}
			if err := decodeJSONBody(line, r); err != nil {
				addParsed(&itemRequest{ID: fmt.Sprintf("line %d", n+1)}, err)
				continue
			}
			addParsed(r, s.finishItem(r))
		}
	case fiber.MIMEMultipartForm:
		form, err := c.MultipartForm()
		if err != nil {
			return badRequest("malformed multipart body: %v", err)
		}
		ids, metas := form.Value["id"], form.Value["metadata"]
		for i, fh := range form.File["image"] {
			r := &itemRequest{fileName: fh.Filename}
			if i < len(ids) {
				r.ID = strings.TrimSpace(ids[i])
			}
			if i < len(metas) {
				r.Metadata = json.RawMessage(metas[i])
			}
			data, err := readFormFile(fh)
			if err != nil {
				addParsed(r, err)
				continue
			}
			r.Image = data
			addParsed(r, s.finishItem(r))
		}
	default:
		return errorf(http.StatusUnsupportedMediaType, "unsupported_content_type",
			"send multipart/form-data (image parts) or application/x-ndjson (one item per line)")
	}
	if len(out) == 0 {
		return badRequest("the batch holds no items")
	}
	if len(out) > s.cfg.Limits.MaxBatchItems {
		return errorf(http.StatusRequestEntityTooLarge, "batch_too_large", "the batch holds %d items, the limit is %d", len(out), s.cfg.Limits.MaxBatchItems)
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	const chunk = 16
	j := 0
	for start := 0; start < len(reqs); start += chunk {
		part := reqs[start:min(start+chunk, len(reqs))]
		results, errs, err := s.storeItems(ctx, col, part, onDup)
		if err != nil && len(results) == 0 {
			e := classify(err)
			if e.Status >= 500 && e.Code == "internal" {
				return err
			}
			results = make([]addResult, len(part))
			errs = make([]error, len(part))
			for i := range errs {
				errs[i] = err
			}
		}
		for i := range part {
			for out[j].Status != 0 { // skip lines that failed to parse
				j++
			}
			if errs[i] != nil {
				e := classify(errs[i])
				out[j].Status, out[j].Error = e.Status, e
			} else {
				out[j].Status, out[j].Item, out[j].NearDuplicate = http.StatusCreated, results[i].Item, results[i].NearDuplicate
				if results[i].MergedInto != "" {
					out[j].Status, out[j].MergedInto = http.StatusOK, results[i].MergedInto
				}
			}
			j++
		}
	}
	stored, failed := 0, 0
	for _, r := range out {
		if r.Status == http.StatusCreated || r.MergedInto != "" {
			stored++
		} else {
			failed++
		}
	}
	return c.JSON(fiber.Map{"results": out, "stored": stored, "failed": failed})
}

// finishItem applies the same defaults and checks as the single-item path.
func (s *Server) finishItem(r *itemRequest) error {
	if r.ImageB64 != "" {
		img, err := decodeBase64Image(r.ImageB64)
		if err != nil {
			return err
		}
		r.Image, r.ImageB64 = img, ""
	}
	if r.Image == nil {
		return badRequest("item %q has no image", r.ID)
	}
	if r.ID == "" && r.fileName != "" {
		base := r.fileName[strings.LastIndexAny(r.fileName, `/\`)+1:]
		if dot := strings.LastIndexByte(base, '.'); dot > 0 {
			base = base[:dot]
		}
		r.ID = base
	}
	r.ID = strings.Clone(r.ID)
	if err := validateID(r.ID, s.cfg.Limits.MaxIDBytes); err != nil {
		return err
	}
	var err error
	r.Metadata, err = validateMetadata(r.Metadata, s.cfg.Limits.MaxMetadataBytes)
	return err
}

func (s *Server) handleGetItem(c *fiber.Ctx) error {
	col, id, err := s.itemTarget(c)
	if err != nil {
		return err
	}
	it, err := col.Get(id)
	if err != nil {
		return itemErr(err, col, id)
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	return c.JSON(itemDetailJSON{
		itemJSON: itemJSON{ID: it.ID, Metadata: metadataOrEmpty(it.Metadata), ThumbnailURL: thumbnailURL(col.Name(), it.ID),
			Fingerprint: col.Fingerprint(), Dims: len(it.Vector), UpdatedAt: it.UpdatedAt},
		Labels: s.labelsFor(ctx, col, it),
	})
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
	if col.Fingerprint() != s.eng.Info().Fingerprint {
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
	embs, err := s.eng.Embed(ctx, []embed.Image{{Data: thumb}})
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

func (s *Server) handleListItems(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	limit := 50
	if v := c.Query("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return badRequest("limit must be in 1..1000, got %q", v)
		}
	}
	items, next, err := col.List(strings.Clone(c.Query("cursor")), limit)
	if err != nil {
		return err
	}
	out := make([]itemJSON, 0, len(items))
	for _, it := range items {
		out = append(out, itemJSON{ID: it.ID, Metadata: metadataOrEmpty(it.Metadata), ThumbnailURL: thumbnailURL(col.Name(), it.ID), UpdatedAt: it.UpdatedAt})
	}
	return c.JSON(fiber.Map{"items": out, "next_cursor": next})
}

// --- search ---------------------------------------------------------------------------------

type resultJSON struct {
	ID           string          `json:"id"`
	Score        float32         `json:"score"`
	Metadata     json.RawMessage `json:"metadata"`
	ThumbnailURL string          `json:"thumbnail_url"`
}

type searchResponse struct {
	Results    []resultJSON       `json:"results"`
	Model      string             `json:"model"`
	TimingsMS  map[string]float64 `json:"timings_ms"`
	NextCursor string             `json:"next_cursor"`
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s *Server) handleSearch(c *fiber.Ctx) error {
	start := time.Now()
	col, err := s.embeddable(c)
	if err != nil {
		return err
	}
	req, err := parseSearch(c, s.cfg.Limits.MaxK, s.cfg.Limits.DefaultK)
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	timings := map[string]float64{"decode": 0, "preprocess": 0, "inference": 0}
	var query []float32
	switch {
	case req.Image != nil:
		embs, err := s.embedAdmitted(ctx, embed.Image{Data: req.Image, Crop: req.crop})
		if err != nil {
			return err
		}
		t := embs[0].Timings
		s.observeEmbedding(t)
		timings["decode"], timings["preprocess"], timings["inference"] = msf(t.Decode), msf(t.Preprocess), msf(t.Inference)
		query = embs[0].Vector
	case req.ID != "":
		it, err := col.Get(req.ID)
		if err != nil {
			return itemErr(err, col, req.ID)
		}
		query = it.Vector
		req.ExcludeIDs = append(req.ExcludeIDs, req.ID)
	default:
		// embeddable() checked the fingerprint, so the collection's dims are the model's.
		if dims := s.eng.Info().Dims; len(req.Vector) != dims {
			return errorf(http.StatusBadRequest, "dimension_mismatch", "vector has %d dimensions, the collection has %d", len(req.Vector), dims)
		}
		query = req.Vector
	}
	return s.answer(c, col, req, query, "", start, timings)
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
	req := &searchRequest{ID: id}
	if err := req.fromQuery(c); err != nil {
		return err
	}
	req.ID = id
	if err := req.validate(s.cfg.Limits.MaxK, s.cfg.Limits.DefaultK); err != nil {
		return err
	}
	return s.answer(c, col, req, nil, id, start, map[string]float64{"decode": 0, "preprocess": 0, "inference": 0})
}

// answer runs the ANN search (by vector, or by stored item when similarTo is set) and writes the
// one response shape search and similar share.
func (s *Server) answer(c *fiber.Ctx, col *index.Collection, req *searchRequest, query []float32, similarTo string, start time.Time, timings map[string]float64) error {
	ctx, cancel := s.requestContext(c)
	defer cancel()
	opts := index.SearchOptions{K: req.K + 1, Ef: req.Ef, Filter: req.filter, Exact: req.Exact, ExcludeIDs: req.ExcludeIDs, Offset: req.offset}
	// Diversified pages are cut from one diversified ranking fetched from the top (3x over-fetch),
	// so pages stay consistent with each other. On by default for similar, off for search.
	div := similarTo != ""
	if req.Diversify != nil {
		div = *req.Diversify
	}
	if div {
		opts.K, opts.Offset = min(3*(req.offset+req.K)+1, index.MaxK), 0
	}
	if req.MinScore != nil {
		opts.MinScore = *req.MinScore
	}
	release, err := s.admitSearch(ctx, opts, div)
	if err != nil {
		return err
	}
	defer release()
	searchStart := time.Now()
	var res []index.Result
	if similarTo != "" {
		res, err = col.Similar(ctx, similarTo, opts)
		if errors.Is(err, index.ErrNotFound) {
			return itemErr(err, col, similarTo)
		}
	} else {
		res, err = col.Search(ctx, query, opts)
	}
	if err != nil {
		return err
	}
	searchDur := time.Since(searchStart)
	if similarTo == "" {
		s.quality.observeSearch(col, query, opts, res)
	}
	if div {
		res = s.diversify(col, res)
		res = res[min(req.offset, len(res)):]
	}
	// One extra result was asked for: its presence says whether another page exists.
	next := ""
	if len(res) > req.K {
		res = res[:req.K]
		next = encodeCursor(req.offset + req.K)
	}
	name := col.Name()
	out := searchResponse{Results: make([]resultJSON, 0, len(res)), Model: s.eng.Info().ModelID, TimingsMS: timings, NextCursor: next}
	for _, r := range res {
		out.Results = append(out.Results, resultJSON{ID: r.ID, Score: r.Score, Metadata: metadataOrEmpty(r.Metadata), ThumbnailURL: thumbnailURL(name, r.ID)})
	}
	total := time.Since(start)
	timings["search"], timings["total"] = msf(searchDur), msf(total)
	s.metrics.stage.WithLabelValues("search").Observe(searchDur.Seconds())
	s.metrics.stage.WithLabelValues("total").Observe(total.Seconds())
	s.stats.query(timings["inference"] > 0, total)
	return c.JSON(out)
}

// --- fields and stats -----------------------------------------------------------------------

type fieldJSON struct {
	Name   string   `json:"name"`
	Type   string   `json:"type"`
	Values []string `json:"values,omitempty"`
	Min    *float64 `json:"min,omitempty"`
	Max    *float64 `json:"max,omitempty"`
	Count  int      `json:"count"`
}

type fieldsCacheEntry struct {
	count  int
	at     time.Time
	fields []fieldJSON
}

// handleFields summarises the collection's metadata fields for filter controls: keyword fields with
// their most common values, numeric fields with their range. It scans the collection, so results
// are cached until the item count changes or 30 s pass.
func (s *Server) handleFields(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	info := col.Info()
	key := info.Name
	if e, ok := s.fieldsCache.Load(key); ok {
		entry := e.(fieldsCacheEntry)
		if entry.count == info.Count && time.Since(entry.at) < 30*time.Second {
			return c.JSON(fiber.Map{"fields": entry.fields})
		}
	}
	type acc struct {
		values   map[string]int
		min, max float64
		numeric  int
		keyword  int
	}
	accs := map[string]*acc{}
	cursor := ""
	for scanned := 0; scanned < 200_000; {
		items, next, err := col.List(cursor, 1000)
		if err != nil {
			return err
		}
		for _, it := range items {
			var obj map[string]any
			if json.Unmarshal(it.Metadata, &obj) != nil {
				continue
			}
			for k, v := range obj {
				a := accs[k]
				if a == nil {
					a = &acc{values: map[string]int{}}
					accs[k] = a
				}
				switch x := v.(type) {
				case float64:
					if a.numeric == 0 || x < a.min {
						a.min = x
					}
					if a.numeric == 0 || x > a.max {
						a.max = x
					}
					a.numeric++
				case string:
					a.keyword++
					if len(a.values) < 500 {
						a.values[x]++
					}
				case []any:
					for _, e := range x {
						if str, ok := e.(string); ok && len(a.values) < 500 {
							a.values[str]++
							a.keyword++
						}
					}
				}
			}
		}
		scanned += len(items)
		if next == "" {
			break
		}
		cursor = next
	}
	fields := []fieldJSON{}
	for name, a := range accs {
		if a.numeric > 0 && a.numeric >= a.keyword {
			lo, hi := a.min, a.max
			fields = append(fields, fieldJSON{Name: name, Type: "number", Min: &lo, Max: &hi, Count: a.numeric})
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
		if len(vals) > 50 {
			vals = vals[:50]
		}
		fields = append(fields, fieldJSON{Name: name, Type: "keyword", Values: vals, Count: a.keyword})
	}
	sort.Slice(fields, func(i, j int) bool { return fields[i].Name < fields[j].Name })
	s.fieldsCache.Store(key, fieldsCacheEntry{count: info.Count, at: time.Now(), fields: fields})
	return c.JSON(fiber.Map{"fields": fields})
}

func (s *Server) handleStats(c *fiber.Ctx) error {
	info := s.eng.Info()
	cols := []fiber.Map{}
	for _, ci := range s.db.Collections() {
		cols = append(cols, fiber.Map{"name": ci.Name, "count": ci.Count, "levels": ci.Levels, "dims": ci.Dims, "disk_bytes": ci.DiskBytes})
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
	if q := s.quality.summary(); q != nil {
		out["quality"] = q
	}
	return c.JSON(out)
}
