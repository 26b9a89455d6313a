package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/rerank"
)

// searchRequest is a search query in either of its encodings (multipart form or JSON). Exactly one
// of Image, ID and Vector is set after parsing.
type searchRequest struct {
	Image      []byte          `json:"-"`
	ImageB64   string          `json:"image"`
	ID         string          `json:"id"`
	PhotoID    string          `json:"photo_id"` // a query photo the server kept (photos.go)
	Vector     []float32       `json:"vector"`
	Crop       json.RawMessage `json:"crop"`
	KJSON      *int            `json:"k"`
	K          int             `json:"-"` // from KJSON or the form; 0 until validate applies the default
	Ef         int             `json:"ef"`
	Filter     json.RawMessage `json:"filter"`
	MinScore   *float32        `json:"min_score"`
	ExcludeIDs []string        `json:"exclude_ids"`
	Cursor     string          `json:"cursor"`
	Exact      bool            `json:"exact"`
	Diversify  *bool           `json:"diversify"`
	Rerank     string          `json:"rerank"`
	// MinSeq (cluster mode): answer from replicas that applied the log up to this sequence (a
	// write's seq). A single node applies every write before it answers: always satisfied.
	MinSeq uint64 `json:"min_seq"`

	crop   *embed.Rect
	filter *index.Filter
	rerank rerank.Mode // ModeDefault: the endpoint's default (answer)
	offset int
	kSet   bool // k was given (an explicit 0 is refused, not read as "default")
	canary bool // routed to a rebuild's shadow (lifecycle.canary_share)
}

// maxExcludeIDs bounds exclude_ids: each one costs a lookup per search.
const maxExcludeIDs = 1000

// invalidQuery is the error for a query parameter outside its limits; details name the parameter.
func invalidQuery(param, format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, "invalid_query", format, args...).with("parameter", param)
}

// itemRequest is one item to add: multipart (image file + id + metadata + if_version) or JSON
// (base64 image). IfVersion 0 means no precondition.
type itemRequest struct {
	ID        string          `json:"id"`
	ImageB64  string          `json:"image"`
	Metadata  json.RawMessage `json:"metadata"`
	IfVersion uint64          `json:"if_version"`
	Image     []byte          `json:"-"`
}

func badRequest(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, "bad_request", format, args...)
}

func mediaType(c *fiber.Ctx) string {
	mt, _, err := mime.ParseMediaType(string(c.Request().Header.ContentType()))
	if err != nil {
		return ""
	}
	return mt
}

// parseSearch reads a search request from the body. Limits come from the caller.
func parseSearch(c *fiber.Ctx, maxK int, defaultK int) (*searchRequest, error) {
	req := &searchRequest{}
	switch mt := mediaType(c); {
	case mt == fiber.MIMEApplicationJSON:
		return parseSearchJSON(c.Body(), maxK, defaultK)
	case mt == fiber.MIMEMultipartForm:
		form, err := c.MultipartForm()
		if err != nil {
			return nil, badRequest("malformed multipart body: %v", err)
		}
		if err := req.fromForm(form); err != nil {
			return nil, err
		}
	case strings.HasPrefix(mt, "image/") || mt == "application/octet-stream":
		req.Image = bytes.Clone(c.Body())
		if err := req.fromQuery(c); err != nil {
			return nil, err
		}
	case mt == "":
		return nil, errorf(http.StatusUnsupportedMediaType, "unsupported_content_type",
			"send multipart/form-data (field image), application/json, or an image/* body")
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, "unsupported_content_type",
			"content type %q is not accepted here; send multipart/form-data, application/json or image/*", mt)
	}
	return req, req.validate(maxK, defaultK)
}

// parseSearchJSON reads a search from its JSON encoding (a search body, or one query of a batch).
func parseSearchJSON(body []byte, maxK int, defaultK int) (*searchRequest, error) {
	req := &searchRequest{}
	if err := decodeJSONBody(body, req); err != nil {
		return nil, err
	}
	if req.KJSON != nil {
		req.K, req.kSet = *req.KJSON, true
	}
	if req.ImageB64 != "" {
		img, err := decodeBase64Image(req.ImageB64)
		if err != nil {
			return nil, err
		}
		req.Image = img
	}
	return req, req.validate(maxK, defaultK)
}

func decodeJSONBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("empty JSON body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("malformed JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("malformed JSON body: trailing data after the object")
	}
	return nil
}

func decodeBase64Image(s string) ([]byte, error) {
	// Accept data URLs as the browser produces them (data:image/png;base64,...).
	if strings.HasPrefix(s, "data:") {
		if i := strings.Index(s, ","); i >= 0 {
			s = s[i+1:]
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, badRequest("field image is not valid base64")
}

func (req *searchRequest) fromForm(form *multipart.Form) error {
	if files := form.File["image"]; len(files) > 0 {
		data, err := readFormFile(files[0])
		if err != nil {
			return err
		}
		req.Image = data
	}
	get := func(name string) string {
		if v := form.Value[name]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	if v := get("image"); v != "" && req.Image == nil {
		img, err := decodeBase64Image(v)
		if err != nil {
			return err
		}
		req.Image = img
	}
	return req.fromValues(get, form.Value["exclude_ids"])
}

func (req *searchRequest) fromQuery(c *fiber.Ctx) error {
	args := c.Request().URI().QueryArgs()
	get := func(name string) string { return strings.TrimSpace(string(args.Peek(name))) }
	var excludes []string
	for _, v := range args.PeekMulti("exclude_ids") {
		excludes = append(excludes, string(v))
	}
	return req.fromValues(get, excludes)
}

// fromValues fills the scalar fields from form or query values.
func (req *searchRequest) fromValues(get func(string) string, excludes []string) error {
	var err error
	if v := get("id"); v != "" {
		req.ID = v
	}
	if v := get("photo_id"); v != "" {
		req.PhotoID = v
	}
	if v := get("k"); v != "" {
		if req.K, err = strconv.Atoi(v); err != nil {
			return invalidQuery("k", "k must be an integer, got %q", v)
		}
		req.kSet = true
	}
	if v := get("ef"); v != "" {
		if req.Ef, err = strconv.Atoi(v); err != nil {
			return invalidQuery("ef", "ef must be an integer, got %q", v)
		}
	}
	if v := get("min_seq"); v != "" {
		if req.MinSeq, err = strconv.ParseUint(v, 10, 64); err != nil {
			return invalidQuery("min_seq", "min_seq must be a log sequence (an integer >= 0), got %q", v)
		}
	}
	if v := get("min_score"); v != "" {
		// ParseFloat also accepts NaN and Inf; validate refuses them with the range check.
		f, err := strconv.ParseFloat(v, 32)
		if err != nil {
			return invalidQuery("min_score", "min_score must be a number in -1..1, got %q", v)
		}
		f32 := float32(f)
		req.MinScore = &f32
	}
	if v := get("exact"); v != "" {
		if req.Exact, err = strconv.ParseBool(v); err != nil {
			return invalidQuery("exact", "exact must be true or false, got %q", v)
		}
	}
	if v := get("diversify"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return invalidQuery("diversify", "diversify must be true or false, got %q", v)
		}
		req.Diversify = &b
	}
	if v := get("vector"); v != "" {
		if err := json.Unmarshal([]byte(v), &req.Vector); err != nil {
			return invalidQuery("vector", "vector must be a JSON array of numbers")
		}
	}
	if v := get("crop"); v != "" {
		req.Crop = json.RawMessage(strconv.Quote(v))
		if strings.HasPrefix(v, "{") {
			req.Crop = json.RawMessage(v)
		}
	}
	if v := get("filter"); v != "" {
		req.Filter = rawFilter(v)
	}
	if v := get("rerank"); v != "" {
		req.Rerank = v
	}
	req.Cursor = get("cursor")
	for _, e := range excludes {
		for _, id := range strings.Split(e, ",") {
			if id = strings.TrimSpace(id); id != "" {
				req.ExcludeIDs = append(req.ExcludeIDs, id)
			}
		}
	}
	return nil
}

func (req *searchRequest) validate(maxK, defaultK int) error {
	n := 0
	for _, set := range []bool{req.Image != nil, req.ID != "", req.Vector != nil, req.PhotoID != ""} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return badRequest("a search needs one of: an image (file or base64), a photo_id, an item id, or a vector")
	case n > 1:
		return badRequest("give only one of image, photo_id, id and vector")
	}
	if err := req.validateLimits(maxK, defaultK); err != nil {
		return err
	}
	var err error
	if req.crop, err = parseCrop(req.Crop); err != nil {
		return err
	}
	if req.crop != nil && req.Image == nil && req.PhotoID == "" {
		return badRequest("crop applies only to an image query")
	}
	if req.filter, err = parseFilter(req.Filter); err != nil {
		return err
	}
	if req.offset, err = decodeCursor(req.Cursor); err != nil {
		return err
	}
	if req.rerank, err = rerank.ParseMode(req.Rerank); err != nil {
		return invalidQuery("rerank", "rerank must be none, qe, kr or qe+kr, got %q", req.Rerank)
	}
	// Pages end at the index's result window: the last page is cut there (answer then offers no
	// next_cursor), so cursors of any page size reach result index.MaxK and stop.
	req.K = min(req.K, index.MaxK-req.offset)
	return nil
}

// validateLimits checks the scalar parameters against the limits the index enforces (maxK is
// limits.max_k, at most index.MaxK by config validation). The comparisons are written so that NaN
// fails them.
func (req *searchRequest) validateLimits(maxK, defaultK int) error {
	if !req.kSet && req.K == 0 {
		req.K = defaultK
	}
	switch {
	case req.K < 1 || req.K > maxK:
		return invalidQuery("k", "k must be in 1..%d, got %d (leave it out for the default, %d)", maxK, req.K, defaultK)
	case req.Ef < 0 || req.Ef > index.MaxEf:
		return invalidQuery("ef", "ef must be in 0..%d (0 = the collection's default), got %d", index.MaxEf, req.Ef)
	case len(req.ExcludeIDs) > maxExcludeIDs:
		return invalidQuery("exclude_ids", "exclude_ids may name at most %d ids, got %d", maxExcludeIDs, len(req.ExcludeIDs))
	case req.MinScore != nil && !(*req.MinScore >= -1 && *req.MinScore <= 1):
		return invalidQuery("min_score", "min_score must be a number in -1..1, got %v", *req.MinScore)
	}
	return nil
}

// checkFilterFields refuses a filter naming a field no item of the collection has: such a filter
// matches nothing (or, under NOT, everything), which is almost always a typo. An empty collection
// knows no fields yet, so its filters are answered (with no results).
func checkFilterFields(col *index.Collection, f *index.Filter) error {
	if f == nil {
		return nil
	}
	for _, name := range f.Fields() {
		if col.HasField(name) {
			continue
		}
		known := col.Fields()
		if len(known) == 0 && col.Info().Count == 0 {
			return nil
		}
		listed := known
		if len(listed) > maxListedFields {
			listed = listed[:maxListedFields]
		}
		more := ""
		if n := len(known) - len(listed); n > 0 {
			more = fmt.Sprintf(" and %d more (GET /v1/collections/%s/fields)", n, col.Name())
		}
		return errorf(http.StatusBadRequest, "unknown_field", "the filter names field %q, which no item in collection %q has; known fields: %s%s",
			name, col.Name(), strings.Join(listed, ", "), more).with("field", name).with("known_fields", listed)
	}
	return nil
}

// maxListedFields bounds the known fields an unknown_field error lists.
const maxListedFields = 50

// parseCrop accepts {"x":..,"y":..,"w":..,"h":..} or "x,y,w,h".
func parseCrop(raw json.RawMessage) (*embed.Rect, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var r embed.Rect
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		parts := strings.Split(s, ",")
		if len(parts) != 4 {
			return nil, errorf(http.StatusBadRequest, "bad_crop", "crop must be \"x,y,w,h\" in pixels, got %q", s)
		}
		vals := make([]int, 4)
		for i, p := range parts {
			f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "bad_crop", "crop must be \"x,y,w,h\" in pixels, got %q", s)
			}
			vals[i] = int(f + 0.5)
		}
		r = embed.Rect{X: vals[0], Y: vals[1], W: vals[2], H: vals[3]}
	} else {
		var box struct{ X, Y, W, H *float64 }
		if err := json.Unmarshal(raw, &box); err != nil || box.X == nil || box.Y == nil || box.W == nil || box.H == nil {
			return nil, errorf(http.StatusBadRequest, "bad_crop", "crop must be {\"x\",\"y\",\"w\",\"h\"} in pixels")
		}
		r = embed.Rect{X: int(*box.X + 0.5), Y: int(*box.Y + 0.5), W: int(*box.W + 0.5), H: int(*box.H + 0.5)}
	}
	if r.X < 0 || r.Y < 0 || r.W < 1 || r.H < 1 {
		return nil, errorf(http.StatusBadRequest, "bad_crop", "crop box must have x, y >= 0 and w, h >= 1, got %+v", r)
	}
	return &r, nil
}

// parseFilter accepts a JSON object ({"category":"shoes","price":{"lt":100}}) or a string in the
// expression syntax (category = "shoes" AND price < 100).
func parseFilter(raw json.RawMessage) (*index.Filter, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var expr string
	if err := json.Unmarshal(raw, &expr); err == nil {
		if strings.TrimSpace(expr) == "" {
			return nil, nil
		}
		if strings.HasPrefix(strings.TrimSpace(expr), "{") {
			return index.FilterFromJSON(json.RawMessage(expr))
		}
		return index.ParseFilter(expr)
	}
	return index.FilterFromJSON(raw)
}

const cursorPrefix = "o1."

func encodeCursor(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.Itoa(offset)))
}

// decodeCursor returns the offset a cursor starts at: inside the result window (index.MaxK), as
// every cursor answer issues is.
func decodeCursor(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil && strings.HasPrefix(string(raw), cursorPrefix) {
		if n, err := strconv.Atoi(string(raw[len(cursorPrefix):])); err == nil && n >= 0 {
			if n >= index.MaxK {
				return 0, invalidQuery("cursor", "cursor starts at result %d; paging ends at result %d", n, index.MaxK)
			}
			return n, nil
		}
	}
	return 0, invalidQuery("cursor", "cursor is not one this server issued")
}

func readFormFile(fh *multipart.FileHeader) ([]byte, error) {
	f, err := fh.Open()
	if err != nil {
		return nil, badRequest("unreadable file part %q: %v", fh.Filename, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, badRequest("unreadable file part %q: %v", fh.Filename, err)
	}
	return data, nil
}

// validateID applies the API's id rules (the index applies its own too).
func validateID(id string, maxBytes int) error {
	switch {
	case id == "":
		return errorf(http.StatusBadRequest, "invalid_id", "id must not be empty")
	case len(id) > maxBytes:
		return errorf(http.StatusBadRequest, "invalid_id", "id is %d bytes, the limit is %d", len(id), maxBytes)
	case !utf8.ValidString(id):
		return errorf(http.StatusBadRequest, "invalid_id", "id must be valid UTF-8")
	case id == "." || id == "..":
		// Browsers resolve dot segments (escaped or not) in the item's URLs: /items/.. is the
		// collection itself, /items/./thumbnail the item named "thumbnail".
		return errorf(http.StatusBadRequest, "invalid_id", "id must not be %q (a URL path segment of its own)", id)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return errorf(http.StatusBadRequest, "invalid_id", "id must not contain control characters")
		}
	}
	return nil
}

func validateMetadata(raw json.RawMessage, maxBytes int) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if len(raw) > maxBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, "metadata_too_large", "metadata is %d bytes, the limit is %d", len(raw), maxBytes)
	}
	if !utf8.Valid(raw) {
		return nil, errorf(http.StatusBadRequest, "invalid_metadata", "metadata must be valid UTF-8")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid_metadata", "metadata must be a JSON object: %v", err)
	}
	// The index refuses these too (ErrInvalidItem); checking here names the field in the details.
	if f := index.NonFiniteNumber(raw); f != "" {
		return nil, errorf(http.StatusBadRequest, "invalid_metadata", "metadata field %q holds a number beyond the float64 range; it could never match a filter", f).
			with("field", f)
	}
	return bytes.Clone(raw), nil
}

// pathParam returns a URL path parameter, unescaped (ids may hold '/' sent as %2F) and copied out
// of fiber's reusable buffer.
func pathParam(c *fiber.Ctx, name string) (string, error) {
	raw := c.Params(name)
	v, err := url.PathUnescape(raw)
	if err != nil {
		return "", badRequest("path parameter %s is not valid URL encoding", name)
	}
	return strings.Clone(v), nil
}
