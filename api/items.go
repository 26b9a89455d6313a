package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/ingest"
)

// itemJSON is an item as every items route returns it. Version changes with every write of the
// item; a client sends it back (if_version, If-Match) to write only over what it read.
type itemJSON struct {
	ID           string          `json:"id"`
	Version      uint64          `json:"version"`
	Metadata     json.RawMessage `json:"metadata"`
	ThumbnailURL string          `json:"thumbnail_url"`
	Fingerprint  string          `json:"fingerprint,omitempty"`
	Dims         int             `json:"dims,omitempty"`
	UpdatedAt    time.Time       `json:"updated_at"`
	// Vector is the stored (normalised) vector, sent only when asked for (with_vector=true).
	Vector []float32 `json:"vector,omitempty"`
}

func metadataOrEmpty(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return json.RawMessage("{}")
	}
	return m
}

// etag is an item version as an HTTP entity tag.
func etag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }

// parseVersion reads a precondition version: a positive integer, optionally as an ETag ("42").
func parseVersion(field, v string) (uint64, error) {
	n, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(v), `"`), 10, 64)
	if err != nil || n == 0 {
		return 0, errorf(http.StatusBadRequest, "invalid_if_version",
			"%s must be an item version (the positive integer in the item's version field), got %q", field, v)
	}
	return n, nil
}

// ifMatch applies the If-Match header to req: the precondition may come from the header or the
// body's if_version, not two different ones.
func ifMatch(c *fiber.Ctx, req *itemRequest) error {
	h := c.Get(fiber.HeaderIfMatch)
	if h == "" {
		return nil
	}
	v, err := parseVersion("If-Match", h)
	if err != nil {
		return err
	}
	if req.IfVersion != 0 && req.IfVersion != v {
		return badRequest("If-Match (%d) and if_version (%d) disagree", v, req.IfVersion)
	}
	req.IfVersion = v
	return nil
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
		if v := form.Value["id"]; len(v) > 0 {
			req.ID = strings.TrimSpace(v[0])
		}
		if v := form.Value["metadata"]; len(v) > 0 {
			req.Metadata = json.RawMessage(v[0])
		}
		if v := form.Value["if_version"]; len(v) > 0 {
			if req.IfVersion, err = parseVersion("if_version", v[0]); err != nil {
				return nil, err
			}
		}
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, "unsupported_content_type",
			"send multipart/form-data (image, id, metadata) or application/json (image as base64)")
	}
	if err := ifMatch(c, req); err != nil {
		return nil, err
	}
	if err := s.finishItem(req); err != nil {
		return nil, err
	}
	return req, nil
}

// finishItem decodes a base64 image and checks id and metadata, for single items and batch lines
// alike. An item without an id gets one derived from its photo when it is stored (never from a
// file name: two phones' image.jpg are different photos).
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
	r.ID = strings.Clone(r.ID)
	if r.ID != "" {
		if err := validateID(r.ID, s.cfg.Limits.MaxIDBytes); err != nil {
			return err
		}
	}
	var err error
	r.Metadata, err = validateMetadata(r.Metadata, s.cfg.Limits.MaxMetadataBytes)
	return err
}

func (r *itemRequest) input() ingest.Input {
	return ingest.Input{ID: r.ID, Image: r.Image, Metadata: r.Metadata, IfVersion: r.IfVersion}
}

type nearDuplicate struct {
	ID    string  `json:"id"`
	Score float32 `json:"score"`
	Tier  string  `json:"tier"` // exact or near (intel.go)
}

// addResult is the answer for one stored item.
type addResult struct {
	Item *itemJSON `json:"item,omitempty"`
	// Outcome is what the write did: created, replaced, unchanged (same photo and metadata:
	// nothing written) or merged (a duplicate whose missing metadata went to MergedInto; Item is
	// that one).
	Outcome       string         `json:"outcome"`
	NearDuplicate *nearDuplicate `json:"near_duplicate_of"`
	MergedInto    string         `json:"merged_into,omitempty"`
}

// status is 201 when the request's photo was stored, 200 when nothing new was (unchanged, merged).
func (r *addResult) status() int {
	if r.Outcome == string(ingest.Created) || r.Outcome == string(ingest.Replaced) {
		return http.StatusCreated
	}
	return http.StatusOK
}

func (s *Server) toAddResult(col *index.Collection, r ingest.Result) *addResult {
	id := r.ID
	if r.MergedInto != "" {
		id = r.MergedInto
	}
	out := &addResult{Outcome: string(r.Outcome), MergedInto: r.MergedInto,
		Item: &itemJSON{ID: id, Version: r.Version, Metadata: metadataOrEmpty(r.Metadata), ThumbnailURL: thumbnailURL(col.Name(), id),
			Fingerprint: col.Fingerprint(), Dims: col.Config().Dims, UpdatedAt: r.UpdatedAt}}
	if d := r.Duplicate; d != nil {
		out.NearDuplicate = &nearDuplicate{ID: d.ID, Score: d.Score, Tier: d.Tier}
	}
	return out
}

// resultErr is a failed item's error; a refused duplicate names the item it duplicates.
func resultErr(r ingest.Result) error {
	if d := r.Duplicate; d != nil && errors.Is(r.Err, ingest.ErrDuplicate) {
		return classify(r.Err).with("near_duplicate_of", nearDuplicate{ID: d.ID, Score: d.Score, Tier: d.Tier})
	}
	return r.Err
}

// ingestPolicy is how this server stores items: its limits, and duplicates found by the catalog
// intelligence (findDuplicate) handled as onDup says.
func (s *Server) ingestPolicy(onDup string) ingest.Policy {
	return ingest.Policy{
		OnDuplicate: ingest.DuplicateAction(onDup),
		// A failed check fails the write under reject and merge (ingest.applyDuplicatePolicy); its
		// error wraps the index's sentinels, which classify answers (503 storage_unavailable or
		// shutting_down, 404 collection_dropped, the context's).
		FindDuplicate: func(ctx context.Context, col *index.Collection, id string, vec []float32, thumb []byte) (*ingest.Duplicate, error) {
			nd, err := s.findDuplicate(ctx, col, id, vec, thumb)
			if nd == nil || err != nil {
				return nil, err
			}
			return &ingest.Duplicate{ID: nd.ID, Score: nd.Score, Tier: nd.Tier}, nil
		},
		ThumbnailSize: s.cfg.Limits.ThumbnailSize, ThumbnailQuality: s.cfg.Limits.ThumbnailQuality, MaxPixels: s.cfg.Limits.MaxPixels,
		SourceSize: s.cfg.Limits.SourceSize, SourceQuality: s.cfg.Limits.SourceQuality,
	}
}

// storeItems stores inputs through the ingest pipeline holding one admission slot, and records
// the metrics. Per-item errors are in the results; err is a failure of the whole call (admission,
// engine, store), with results still saying which items were stored before it.
func (s *Server) storeItems(ctx context.Context, col *index.Collection, inputs []ingest.Input, onDup string) ([]ingest.Result, error) {
	release, err := s.admit.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	results, err := ingest.Store(ctx, s.engineOf(col), col, inputs, s.ingestPolicy(onDup))
	embedded := 0
	for _, r := range results {
		if r.Timings != nil {
			embedded++
			s.observeEmbedding(*r.Timings)
		}
		if r.Duplicate != nil {
			s.metrics.nearDuplicate.Inc()
		}
		if r.Err != nil {
			s.metrics.ingested.WithLabelValues("failed").Inc()
		} else {
			s.metrics.ingested.WithLabelValues("stored").Inc()
		}
	}
	if embedded > 0 {
		s.metrics.batchSize.Observe(float64(embedded))
	}
	return results, err
}

func (s *Server) handleAddItem(c *fiber.Ctx) error {
	col, err := s.embeddable(c)
	if err != nil {
		return err
	}
	if cm := s.cluster.Load(); cm != nil {
		return cm.add(s, c, col)
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
	results, err := s.storeItems(ctx, col, []ingest.Input{req.input()}, onDup)
	if err != nil {
		return err
	}
	if results[0].Err != nil {
		return resultErr(results[0])
	}
	out := s.toAddResult(col, results[0])
	c.Set(fiber.HeaderETag, etag(out.Item.Version))
	return c.Status(out.status()).JSON(out)
}

// batchLine is one item's answer in a batch: its addResult, or its error.
type batchLine struct {
	ID     string `json:"id"`
	Status int    `json:"status"`
	*addResult
	// Seq is the mutation log's sequence of the item's write (cluster mode only).
	Seq   uint64 `json:"seq,omitempty"`
	Error *Error `json:"error,omitempty"`
}

func (l *batchLine) fail(err error) { l.setError(classify(err)) }

func (l *batchLine) setError(e *Error) {
	l.Error = e
	l.Status = e.Status
}

// handleBatch adds many items: multipart parts named image (ids from repeated id fields in order,
// metadata from repeated metadata fields in order), or NDJSON lines {"id","image","metadata",
// "if_version"}. An item without an id gets one derived from its photo. One bad item never fails
// the others; an id given twice fails the later items with duplicate_id.
func (s *Server) handleBatch(c *fiber.Ctx) error {
	col, err := s.embeddable(c)
	if err != nil {
		return err
	}
	onDup, err := s.duplicatePolicy(c)
	if err != nil {
		return err
	}
	if c.Get(fiber.HeaderIfMatch) != "" {
		return badRequest("If-Match names one item; give each NDJSON line its own if_version")
	}
	out, reqs, err := s.parseBatch(c)
	if err != nil {
		return err
	}
	if len(out) == 0 {
		return badRequest("the batch holds no items")
	}
	if len(out) > s.cfg.Limits.MaxBatchItems {
		return errorf(http.StatusRequestEntityTooLarge, "batch_too_large", "the batch holds %d items, the limit is %d", len(out), s.cfg.Limits.MaxBatchItems)
	}
	// Ids are settled over the whole batch before it is stored in chunks, so an id repeated
	// across chunks is caught too.
	inputs := make([]ingest.Input, len(reqs))
	for i, r := range reqs {
		inputs[i] = r.input()
	}
	var pos []int // out index of each input still to store
	var todo []ingest.Input
	for i, idErr := range ingest.AssignIDs(inputs) {
		line := &out[reqs[i].line]
		line.ID = inputs[i].ID
		if idErr != nil {
			line.fail(idErr)
			continue
		}
		pos, todo = append(pos, reqs[i].line), append(todo, inputs[i])
	}
	if cm := s.cluster.Load(); cm != nil {
		return cm.batch(s, c, col, out, pos, todo)
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	const chunk = 16
	for start := 0; start < len(todo); start += chunk {
		end := min(start+chunk, len(todo))
		results, err := s.storeItems(ctx, col, todo[start:end], onDup)
		if err != nil && classify(err).Code == "internal" {
			return err
		}
		var chunkErr *Error // logged once for the chunk: its items carry it
		for k, at := range pos[start:end] {
			switch {
			case results == nil:
				if chunkErr == nil {
					chunkErr = s.classifyLogged(c, err) // refused as a whole (admission, storage)
				}
				out[at].setError(chunkErr)
			case results[k].Err != nil:
				out[at].setError(s.classifyLogged(c, resultErr(results[k])))
			default:
				out[at].addResult = s.toAddResult(col, results[k])
				out[at].Status = out[at].status()
			}
		}
	}
	return writeBatch(c, out)
}

// writeBatch writes a batch's answer: every line, and how many were stored and failed.
func writeBatch(c *fiber.Ctx, out []batchLine) error {
	stored, failed := 0, 0
	for _, l := range out {
		if l.Error == nil {
			stored++
		} else {
			failed++
		}
	}
	return c.JSON(fiber.Map{"results": out, "stored": stored, "failed": failed})
}

// batchRequest is a parsed batch item and its line in the answer.
type batchRequest struct {
	*itemRequest
	line int
}

// parseBatch reads the batch body: one answer line per item, lines that did not parse already
// failed, and the parsed items.
func (s *Server) parseBatch(c *fiber.Ctx) ([]batchLine, []batchRequest, error) {
	var out []batchLine
	var reqs []batchRequest
	add := func(r *itemRequest, perr error) {
		l := batchLine{ID: r.ID}
		if perr != nil {
			l.fail(perr)
		} else {
			reqs = append(reqs, batchRequest{r, len(out)})
		}
		out = append(out, l)
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
				add(&itemRequest{ID: fmt.Sprintf("line %d", n+1)}, err)
				continue
			}
			add(r, s.finishItem(r))
		}
	case fiber.MIMEMultipartForm:
		form, err := c.MultipartForm()
		if err != nil {
			return nil, nil, badRequest("malformed multipart body: %v", err)
		}
		ids, metas := form.Value["id"], form.Value["metadata"]
		for i, fh := range form.File["image"] {
			r := &itemRequest{}
			if i < len(ids) {
				r.ID = strings.TrimSpace(ids[i])
			}
			if i < len(metas) {
				r.Metadata = json.RawMessage(metas[i])
			}
			data, err := readFormFile(fh)
			if err != nil {
				add(r, err)
				continue
			}
			r.Image = data
			add(r, s.finishItem(r))
		}
	default:
		return nil, nil, errorf(http.StatusUnsupportedMediaType, "unsupported_content_type",
			"send multipart/form-data (image parts) or application/x-ndjson (one item per line)")
	}
	return out, reqs, nil
}

// handleSource sends the item's largest stored photo: its source rendition (limits.source_size)
// when it has one, its thumbnail otherwise (items added before renditions, or with source_size 0).
// X-Rendition says which, so a page can tell a sharp photo from an enlarged thumbnail.
func (s *Server) handleSource(c *fiber.Ctx) error {
	col, id, err := s.itemTarget(c)
	if err != nil {
		return err
	}
	if cm := s.cluster.Load(); cm != nil {
		return cm.image(s, c, col, id, true)
	}
	img, err := col.Source(id)
	rendition := "source"
	if err == nil && len(img) == 0 {
		img, err = col.Thumbnail(id)
		rendition = "thumbnail"
	}
	if err != nil {
		return itemErr(err, col, id)
	}
	c.Set(fiber.HeaderContentType, "image/jpeg")
	c.Set(fiber.HeaderCacheControl, "private, max-age=60")
	c.Set("X-Rendition", rendition)
	return c.Send(img)
}
