package api

// HTTP front of catalog intelligence (package intel): duplicate clusters and their resolution into
// the trash, the trash itself, tag suggestions and bulk tagging, "why it matched" heatmaps, and the
// diversification of result pages. The domain decisions are intel's; this file parses requests,
// adds thumbnail URLs, and leaves statuses to classify.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/embed"
	embedspec "github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/intel"
)

// registerIntelRoutes adds the catalog-intelligence routes. Ids travel in JSON bodies, never in
// these paths, so no id can turn one route into another.
func (s *Server) registerIntelRoutes(v1 fiber.Router, read, write fiber.Handler) {
	v1.Post("/collections/:c/tags\\:suggest", read, s.handleSuggestTags)
	v1.Post("/collections/:c/tags\\:apply", write, s.handleApplyTags)
	v1.Get("/collections/:c/duplicates", read, s.handleDuplicates)
	v1.Post("/collections/:c/duplicates\\:resolve", write, s.handleResolve)
	v1.Post("/collections/:c/items\\:trash", write, s.handleTrash)
	v1.Get("/collections/:c/trash", read, s.handleListTrash)
	v1.Post("/collections/:c/trash\\:restore", write, s.handleRestore)
	v1.Get("/collections/:c/search/explain", read, s.handleExplain)
	v1.Post("/collections/:c/search/explain", read, s.handleExplain)
}

// detector is cheap: one per call, sharing the server's signature cache, with the thresholds of
// col's descriptor profile.
func (s *Server) detector(col *index.Collection) *intel.Detector {
	return intel.NewDetector(intel.ForFingerprint(s.cfg.Intel, col.Fingerprint()), &s.signatures)
}

// findDuplicate returns the closest stored item (other than id) in the near or exact tier; an
// error when the check could not run (intel.Detector.FindDuplicate).
func (s *Server) findDuplicate(ctx context.Context, col *index.Collection, id string, vec []float32, thumb []byte) (*nearDuplicate, error) {
	m, err := s.detector(col).FindDuplicate(ctx, col, id, vec, thumb)
	if m == nil || err != nil {
		return nil, err
	}
	return &nearDuplicate{ID: m.ID, Score: m.Score, Tier: m.Tier}, nil
}

// --- search cost ----------------------------------------------------------------------------

// cheapCandidates: a search or similar that fetches up to this many candidates, diversified by
// cosine or not, costs about a millisecond; more (k up to 1000, or 3x over-fetch for diversity),
// exact search, or diversity by pixels can cost tens. Those pass admission control like image
// searches, so a flood of them is refused with 429 instead of slowing everyone down.
const cheapCandidates = 100

// admitSearch takes an admission slot for an expensive search; release is never nil.
func (s *Server) admitSearch(ctx context.Context, opts index.SearchOptions, diversify bool) (release func(), err error) {
	if opts.K+opts.Offset <= cheapCandidates && !opts.Exact && !(diversify && s.cfg.Intel.DiversifyPixels) {
		return func() {}, nil
	}
	return s.admit.acquire(ctx)
}

// diversify drops copies of better-ranked results (intel.Detector.Diversify: bounded work).
func (s *Server) diversify(col *index.Collection, res []index.Result) []index.Result {
	return s.detector(col).Diversify(col, res)
}

// --- duplicates -----------------------------------------------------------------------------

// dupMemberJSON is a cluster member with its thumbnail URL (and metadata, {} when it has none).
type dupMemberJSON struct {
	intel.DupMember
	ThumbnailURL string `json:"thumbnail_url"`
}

type dupClusterJSON struct {
	Items []dupMemberJSON `json:"items"`
}

// dupPageJSON is intel's page with the clusters' thumbnail URLs (its Clusters shadow the page's).
type dupPageJSON struct {
	intel.DupPage
	Clusters []dupClusterJSON `json:"clusters"`
	// OneClick says whether this tier may be resolved without listing the ids (not similar).
	OneClick bool `json:"one_click"`
}

func (s *Server) handleDuplicates(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	limit, err := queryLimit(c, 200)
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	tier := strings.Clone(c.Query("tier"))
	page, err := s.detector(col).FindDuplicates(ctx, col, tier, strings.Clone(c.Query("cursor")), limit)
	if err != nil {
		return err
	}
	name := col.Name()
	out := dupPageJSON{DupPage: page, Clusters: make([]dupClusterJSON, 0, len(page.Clusters)), OneClick: page.Tier != intel.TierSimilar}
	for _, cl := range page.Clusters {
		cj := dupClusterJSON{Items: make([]dupMemberJSON, 0, len(cl.Items))}
		for _, m := range cl.Items {
			m.Metadata = metadataOrEmpty(m.Metadata)
			cj.Items = append(cj.Items, dupMemberJSON{DupMember: m, ThumbnailURL: thumbnailURL(name, m.ID)})
		}
		out.Clusters = append(out.Clusters, cj)
	}
	return c.JSON(out)
}

// queryLimit reads ?limit= in 1..1000.
func queryLimit(c *fiber.Ctx, def int) (int, error) {
	v := c.Query("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, badRequest("limit must be in 1..1000, got %q", v)
	}
	return n, nil
}

// jsonBody decodes a required JSON request body.
func jsonBody(c *fiber.Ctx, v any) error {
	if mediaType(c) != fiber.MIMEApplicationJSON {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_content_type", "send application/json")
	}
	return decodeJSONBody(c.Body(), v)
}

// handleResolve keeps one item of a cluster and moves the others to the trash: the ids listed in
// delete, or (exact and near tiers only) the other members of the kept item's cluster.
func (s *Server) handleResolve(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	var req struct {
		Keep   string   `json:"keep"`
		Tier   string   `json:"tier"`
		Delete []string `json:"delete"`
		DryRun bool     `json:"dry_run"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	if req.Keep == "" {
		return badRequest("keep (the id of the item to keep) is required")
	}
	if len(req.Delete) > s.cfg.Limits.MaxBatchItems {
		return errorf(http.StatusRequestEntityTooLarge, "batch_too_large", "delete lists %d ids, the limit is %d", len(req.Delete), s.cfg.Limits.MaxBatchItems)
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	s.purgeTrash(ctx, col)
	res, err := s.detector(col).Resolve(ctx, col, req.Keep, req.Tier, req.Delete, req.DryRun)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"keep": res.Keep, "tier": res.Tier, "trashed": res.Trashed, "missing": res.Missing,
		"dry_run": res.DryRun, "restorable_until": time.Now().Add(s.cfg.Intel.TrashRetention).UTC()})
}

// --- trash ----------------------------------------------------------------------------------

// idsBody reads {"ids": [...]}: 1..limits.max_batch_items ids.
func (s *Server) idsBody(c *fiber.Ctx) ([]string, error) {
	var req struct {
		IDs []string `json:"ids"`
	}
	if err := jsonBody(c, &req); err != nil {
		return nil, err
	}
	switch {
	case len(req.IDs) == 0:
		return nil, badRequest("ids (a non-empty list) is required")
	case len(req.IDs) > s.cfg.Limits.MaxBatchItems:
		return nil, errorf(http.StatusRequestEntityTooLarge, "batch_too_large", "ids lists %d ids, the limit is %d", len(req.IDs), s.cfg.Limits.MaxBatchItems)
	}
	return req.IDs, nil
}

// purgeTrash drops trash entries older than intel.trash_retention. It runs lazily on every trash
// call of the collection: cheap (one read of the trash bucket) and no goroutine to own. A failure
// only delays the purge.
func (s *Server) purgeTrash(ctx context.Context, col *index.Collection) {
	if n, err := col.PurgeTrash(ctx, time.Now().Add(-s.cfg.Intel.TrashRetention)); errors.Is(err, index.ErrReadOnly) {
		return // nothing can be trashed either
	} else if err != nil {
		s.log.Warn("trash purge failed", "collection", col.Name(), "err", err)
	} else if n > 0 {
		s.log.Info("trash purged", "collection", col.Name(), "items", n)
	}
}

// withTrash runs fn for a trash request: the collection, the ids of the JSON body, a request
// context, and the old entries purged first.
func (s *Server) withTrash(c *fiber.Ctx, fn func(ctx context.Context, col *index.Collection, ids []string) error) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	ids, err := s.idsBody(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	s.purgeTrash(ctx, col)
	return fn(ctx, col, ids)
}

// handleTrash moves items to the trash (a delete that can be undone for intel.trash_retention).
func (s *Server) handleTrash(c *fiber.Ctx) error {
	return s.withTrash(c, func(ctx context.Context, col *index.Collection, ids []string) error {
		moved, err := col.Trash(ctx, ids...)
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"trashed": append([]string{}, moved...), "restorable_until": time.Now().Add(s.cfg.Intel.TrashRetention).UTC()})
	})
}

type trashEntryJSON struct {
	ID        string          `json:"id"`
	Metadata  json.RawMessage `json:"metadata"`
	DeletedAt time.Time       `json:"deleted_at"`
	PurgeAt   time.Time       `json:"purge_at"`
}

func (s *Server) handleListTrash(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	limit, err := queryLimit(c, 100)
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	s.purgeTrash(ctx, col)
	list, next, err := col.ListTrash(strings.Clone(c.Query("cursor")), limit)
	if err != nil {
		return err
	}
	out := make([]trashEntryJSON, 0, len(list))
	for _, e := range list {
		out = append(out, trashEntryJSON{ID: e.ID, Metadata: metadataOrEmpty(e.Metadata), DeletedAt: e.DeletedAt,
			PurgeAt: e.DeletedAt.Add(s.cfg.Intel.TrashRetention)})
	}
	return c.JSON(fiber.Map{"items": out, "next_cursor": next})
}

// handleRestore puts trashed items back. Each id gets its own result: one already restored (or
// purged, or re-added since) does not stop the others.
func (s *Server) handleRestore(c *fiber.Ctx) error {
	type result struct {
		ID     string    `json:"id"`
		Status int       `json:"status"`
		Item   *itemJSON `json:"item,omitempty"`
		Error  *Error    `json:"error,omitempty"`
	}
	return s.withTrash(c, func(ctx context.Context, col *index.Collection, ids []string) error {
		out := make([]result, 0, len(ids))
		restored := 0
		for _, id := range ids {
			if _, err := col.RestoreFromTrash(ctx, id); err != nil {
				e := classify(err)
				if e.Status >= 500 {
					return err
				}
				out = append(out, result{ID: id, Status: e.Status, Error: e})
				continue
			}
			it, err := col.Get(id)
			if err != nil {
				return err
			}
			restored++
			out = append(out, result{ID: id, Status: http.StatusOK, Item: &itemJSON{ID: id, Metadata: metadataOrEmpty(it.Metadata),
				ThumbnailURL: thumbnailURL(col.Name(), id), Fingerprint: col.Fingerprint(), Dims: len(it.Vector), UpdatedAt: it.UpdatedAt}})
		}
		return c.JSON(fiber.Map{"results": out, "restored": restored, "failed": len(ids) - restored})
	})
}

// --- tags -----------------------------------------------------------------------------------

type tagsSuggestResponse struct {
	ID          string                           `json:"id,omitempty"`
	Suggestions map[string][]intel.TagSuggestion `json:"suggestions"`
	Labels      []labelJSON                      `json:"labels"`
	Model       string                           `json:"model"`
}

// handleSuggestTags: POST tags:suggest with an image (multipart, base64 JSON or raw image/*) or an
// item id ({"id"} JSON, form field or ?id=). k (neighbours) from the body or the query.
func (s *Server) handleSuggestTags(c *fiber.Ctx) error {
	col, err := s.embeddable(c)
	if err != nil {
		return err
	}
	var req searchRequest
	if len(bytes.TrimSpace(c.Body())) == 0 {
		if err := req.fromQuery(c); err != nil {
			return err
		}
	} else {
		r, err := parseSearch(c, index.MaxK, s.cfg.Intel.TagNeighbors)
		if err != nil {
			return err
		}
		req = *r
	}
	if req.ID == "" && req.Image == nil {
		return badRequest("tags:suggest needs an image or an item id")
	}
	if req.K == 0 {
		req.K = s.cfg.Intel.TagNeighbors
	}
	if req.K < 1 || req.K > 200 {
		return badRequest("k must be in 1..200, got %d", req.K)
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	out := tagsSuggestResponse{ID: req.ID, Labels: []labelJSON{}, Model: s.eng.Info().ModelID}
	var vec []float32
	if req.Image != nil {
		embs, err := s.embedAdmitted(ctx, col, embed.Image{Data: req.Image, Crop: req.crop})
		if err != nil {
			return err
		}
		vec = embs[0].Vector
		for _, l := range embs[0].Labels {
			out.Labels = append(out.Labels, labelJSON{Name: l.Name, Prob: l.Prob})
		}
	} else {
		it, err := col.Get(req.ID)
		if err != nil {
			return itemErr(err, col, req.ID)
		}
		vec = it.Vector
		out.Labels = s.labelsFor(ctx, col, it)
	}
	if out.Suggestions, err = intel.SuggestTags(ctx, col, vec, req.ID, req.K); err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *Server) handleApplyTags(c *fiber.Ctx) error {
	col, err := s.embeddable(c)
	if err != nil {
		return err
	}
	var req struct {
		Cursor        string   `json:"cursor"`
		Limit         int      `json:"limit"`
		K             int      `json:"k"`
		MinConfidence *float64 `json:"min_confidence"`
		Overwrite     bool     `json:"overwrite"`
		DryRun        bool     `json:"dry_run"`
		Fields        []string `json:"fields"`
	}
	if len(bytes.TrimSpace(c.Body())) > 0 {
		if err := jsonBody(c, &req); err != nil {
			return err
		}
	}
	if req.Limit == 0 {
		req.Limit = 200
	}
	switch {
	case req.Limit < 1 || req.Limit > 1000:
		return badRequest("limit must be in 1..1000, got %d", req.Limit)
	case req.K < 0 || req.K > 200:
		return badRequest("k must be in 1..200, got %d", req.K)
	case req.MinConfidence != nil && (*req.MinConfidence < 0 || *req.MinConfidence > 1):
		return badRequest("min_confidence must be in 0..1")
	}
	o := intel.TagOptions{K: orDefault(req.K, s.cfg.Intel.TagNeighbors), MinConfidence: s.cfg.Intel.TagMinConfidence,
		Overwrite: req.Overwrite, DryRun: req.DryRun, Fields: req.Fields}
	if req.MinConfidence != nil {
		o.MinConfidence = *req.MinConfidence
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	rep, err := intel.TagItems(ctx, col, req.Cursor, req.Limit, o)
	if err != nil {
		return err
	}
	return c.JSON(rep)
}

// --- explain --------------------------------------------------------------------------------

type explainJSON struct {
	QueryID string      `json:"query_id,omitempty"`
	ID      string      `json:"id"`
	Score   float32     `json:"score"`
	Rows    int         `json:"rows"`
	Cols    int         `json:"cols"`
	Grid    [][]float32 `json:"grid"`
	Min     float32     `json:"min"`
	Max     float32     `json:"max"`
	// Crop is the region the grid covers, in thumbnail pixels: the whole thumbnail and some of the
	// padding around it (x, y may be negative; intel.Letterbox).
	Crop [4]int `json:"crop"`
}

// explainRequest is what handleExplain needs, from the query string, a form or a JSON body.
type explainRequest struct {
	queryID, photoID, id, format string
	alpha                        float64
	image                        []byte
	crop                         *embed.Rect
}

// parseExplain reads GET ?query_id=&id= or a POST multipart/JSON body with image (or query_id) and id.
func parseExplain(c *fiber.Ctx) (*explainRequest, error) {
	get := func(name string) string { return strings.Clone(strings.TrimSpace(c.Query(name))) }
	r := &explainRequest{queryID: get("query_id"), photoID: get("photo_id"), id: get("id"), format: get("format")}
	alphaS := get("alpha")
	var err error
	switch mt := mediaType(c); {
	case c.Method() == http.MethodGet:
	case mt == fiber.MIMEMultipartForm:
		form, err := c.MultipartForm()
		if err != nil {
			return nil, badRequest("malformed multipart body: %v", err)
		}
		if files := form.File["image"]; len(files) > 0 {
			if r.image, err = readFormFile(files[0]); err != nil {
				return nil, err
			}
		}
		for k, dst := range map[string]*string{"query_id": &r.queryID, "photo_id": &r.photoID, "id": &r.id, "format": &r.format, "alpha": &alphaS} {
			if v := form.Value[k]; len(v) > 0 && *dst == "" {
				*dst = strings.Clone(strings.TrimSpace(v[0]))
			}
		}
		if v := form.Value["crop"]; len(v) > 0 {
			if r.crop, err = parseCrop(json.RawMessage(strconv.Quote(v[0]))); err != nil {
				return nil, err
			}
		}
	case mt == fiber.MIMEApplicationJSON:
		var body struct {
			Image   string          `json:"image"`
			QueryID string          `json:"query_id"`
			PhotoID string          `json:"photo_id"`
			ID      string          `json:"id"`
			Crop    json.RawMessage `json:"crop"`
			Format  string          `json:"format"`
			Alpha   *float64        `json:"alpha"`
		}
		if err := decodeJSONBody(c.Body(), &body); err != nil {
			return nil, err
		}
		if body.Image != "" {
			if r.image, err = decodeBase64Image(body.Image); err != nil {
				return nil, err
			}
		}
		if r.crop, err = parseCrop(body.Crop); err != nil {
			return nil, err
		}
		r.queryID, r.id, r.format = cmp.Or(r.queryID, body.QueryID), cmp.Or(r.id, body.ID), cmp.Or(r.format, body.Format)
		r.photoID = cmp.Or(r.photoID, body.PhotoID)
		if body.Alpha != nil && alphaS == "" {
			alphaS = strconv.FormatFloat(*body.Alpha, 'f', -1, 64)
		}
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, "unsupported_content_type", "send multipart/form-data or application/json (image, id), or use GET with query_id and id")
	}
	r.alpha = 0.5
	if alphaS != "" {
		if r.alpha, err = strconv.ParseFloat(alphaS, 64); err != nil || !(r.alpha >= 0 && r.alpha <= 1) { // NaN fails
			return nil, invalidQuery("alpha", "alpha must be a number in 0..1, got %q", alphaS)
		}
	}
	switch {
	case r.id == "":
		return nil, badRequest("id (the result to explain) is required")
	case r.queryID == "" && r.image == nil && r.photoID == "":
		return nil, badRequest("give the query as query_id (an item), photo_id (a kept query photo) or an uploaded image")
	case r.queryID != "" && (r.image != nil || r.photoID != "") || r.image != nil && r.photoID != "":
		return nil, badRequest("give only one of query_id, photo_id and image")
	case r.format != "" && r.format != "png" && r.format != "json":
		return nil, badRequest("format must be png or json, got %q", r.format)
	}
	return r, nil
}

// explainBaseline is how many of the query's nearest items make the "average match" a heatmap is
// contrasted with.
const explainBaseline = 16

// averageMatch is the mean stored vector of the query's nearest items (nil when there are none): the
// baseline that makes a heatmap show what differs from an average match (intel.Contrast).
func (s *Server) averageMatch(ctx context.Context, col *index.Collection, query []float32) []float32 {
	res, err := col.Search(ctx, query, index.SearchOptions{K: explainBaseline})
	if err != nil {
		return nil
	}
	vecs := make([][]float32, 0, len(res))
	for _, r := range res {
		if v, err := col.Vector(r.ID); err == nil {
			vecs = append(vecs, v)
		}
	}
	return intel.MeanVector(vecs)
}

// handleExplain answers a PNG of the result's thumbnail with the heatmap, or JSON with format=json.
func (s *Server) handleExplain(c *fiber.Ctx) error {
	col, err := s.embeddable(c)
	if err != nil {
		return err
	}
	spec := s.eng.Info().Spec
	if spec.FeatureMapTensor == "" {
		return errorf(http.StatusNotImplemented, "explain_unavailable",
			"the model has no spatial feature map configured (set model.feature_map_tensor, e.g. 627_quantized)")
	}
	req, err := parseExplain(c)
	if err != nil {
		return err
	}
	if req.photoID != "" {
		if req.image, err = s.keptPhoto(req.photoID); err != nil {
			return err
		}
	}
	// A single node reads its collection; a cluster node, replicas of the items' shards (cluster_query.go).
	get, averageMatch := col.Get, func(ctx context.Context, q []float32) []float32 { return s.averageMatch(ctx, col, q) }
	if cm := s.cluster.Load(); cm != nil {
		get, averageMatch = cm.explainReads(s, c, col)
	}
	target, err := get(req.id)
	if err != nil {
		return itemErr(err, col, req.id)
	}
	if len(target.Thumbnail) == 0 {
		return errorf(http.StatusConflict, "no_thumbnail", "item %q has no stored thumbnail to explain", req.id)
	}
	// The heatmap needs the fast profile's feature map of the target, of the whole thumbnail (padded
	// so the model's centre crop takes it all in); a query photo is embedded like the collection's
	// vectors, to be compared with them.
	padded, box, err := intel.Letterbox(target.Thumbnail, spec)
	if err != nil {
		return err
	}
	imgs := []embed.Image{{Data: padded, Profile: embedspec.ProfileFast}}
	var query []float32
	if req.queryID != "" {
		q, err := get(req.queryID)
		if err != nil {
			return itemErr(err, col, req.queryID)
		}
		query = q.Vector
	} else {
		imgs = append(imgs, embed.Image{Data: req.image, Crop: req.crop})
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	embs, err := s.embedAdmitted(ctx, col, imgs...)
	if err != nil {
		return err
	}
	if query == nil {
		query = embs[1].Vector
	}
	// a tuned collection's vectors are projected: the heatmap weighs the feature map's channels
	// by the query carried back through the projection (channelWeights)
	ex, err := intel.Explain(target, embs[0], s.channelWeights(col, query), spec)
	if err != nil {
		return err
	}
	ex.Score = index.Dot(query, target.Vector)
	ex.Box = box
	if base := averageMatch(ctx, query); base != nil {
		if err := ex.Contrast(embs[0], s.channelWeights(col, base)); err != nil {
			return err
		}
	}
	c.Set("X-Match-Score", strconv.FormatFloat(float64(ex.Score), 'f', 4, 32))
	if req.format == "json" {
		return c.JSON(explainJSON{QueryID: req.queryID, ID: req.id, Score: ex.Score, Rows: ex.Rows, Cols: ex.Cols, Grid: ex.Grid(),
			Min: ex.Min, Max: ex.Max, Crop: [4]int{ex.Box.Min.X, ex.Box.Min.Y, ex.Box.Dx(), ex.Box.Dy()}})
	}
	png, err := ex.PNG(req.alpha)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "image/png")
	c.Set(fiber.HeaderCacheControl, "private, max-age=60")
	return c.Send(png)
}
