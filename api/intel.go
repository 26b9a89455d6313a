package api

// Catalog intelligence: tag suggestions by neighbour vote, duplicate tiers and clusters, result
// diversification and "why it matched" heatmaps. The pure parts (voting, tiers, clustering,
// heatmaps) are exported so that cmd/lookalike runs the same code offline (lookalike tag, lookalike
// dupes). docs/intelligence.md has the measurements behind every threshold.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// --- tiers ----------------------------------------------------------------------------------

// Duplicate tiers, strongest first. TierNone is "not a duplicate".
const (
	TierExact   = "exact"
	TierNear    = "near"
	TierSimilar = "similar"
	TierNone    = "none"
)

// Tiers holds the calibrated thresholds (config intel.*). A near-duplicate (a re-encoded, resized,
// slightly cropped, watermarked or relit copy of one photo) needs both a cosine of at least Near
// and a PixelMatch of at least Pixel: cosines alone overlap with other photos of the same product.
type Tiers struct {
	Near    float32 // cosine gate for near-duplicates
	Pixel   float64 // PixelMatch needed on top of Near
	Similar float32 // other photos of the same product
}

// TiersFrom reads the thresholds of the configuration.
func TiersFrom(c config.Intel) Tiers {
	return Tiers{Near: float32(c.NearDuplicateScore), Pixel: c.PixelMatch, Similar: float32(c.SimilarScore)}
}

// exactScore: identical pixels give identical vectors, so only pairs this close can be exact; the
// thumbnail comparison then decides (a JPEG re-encode at the same size scores ~0.99-0.999).
const exactScore = 0.9995

// PairTier classifies a pair from its cosine, whether the stored thumbnails are byte-identical
// (thumbnails are re-encoded deterministically from decoded pixels: equal thumbnails mean equal
// pixels at thumbnail resolution) and its PixelMatch (only consulted at or above Near).
func (t Tiers) PairTier(score float32, sameThumb bool, pixel float64) string {
	switch {
	case sameThumb && score >= exactScore:
		return TierExact
	case score >= t.Near && pixel >= t.Pixel:
		return TierNear
	case score >= t.Similar:
		return TierSimilar
	}
	return TierNone
}

func (t Tiers) threshold(tier string) (float32, error) {
	switch tier {
	case TierExact:
		return exactScore, nil
	case TierNear, "":
		return t.Near, nil
	case TierSimilar:
		return t.Similar, nil
	}
	return 0, badRequest("tier must be exact, near or similar, got %q", tier)
}

func tierRank(t string) int {
	switch t {
	case TierExact:
		return 3
	case TierNear:
		return 2
	case TierSimilar:
		return 1
	}
	return 0
}

// --- duplicate clusters ---------------------------------------------------------------------

// DupMember is one item of a cluster; Score and Tier are relative to the cluster's first item.
type DupMember struct {
	ID           string          `json:"id"`
	Score        float32         `json:"score"`
	Tier         string          `json:"tier"`
	Metadata     json.RawMessage `json:"metadata"`
	ThumbnailURL string          `json:"thumbnail_url"`
}

// DupCluster is one group of duplicates: the seed (smallest id) first.
type DupCluster struct {
	Items []DupMember `json:"items"`
}

// DupPage is one page of clusters.
type DupPage struct {
	Tier       string       `json:"tier"`
	Threshold  float32      `json:"threshold"`
	Clusters   []DupCluster `json:"clusters"`
	Scanned    int          `json:"scanned"`
	NextCursor string       `json:"next_cursor"`
}

// SignatureCache keeps compact pixel signatures across requests, keyed by the thumbnail's
// SHA-256 (content-addressed: a replaced photo never hits a stale entry). It holds at most
// maxCachedSignatures (~40 KB each) and starts over when full: thumbnails decode in about a
// millisecond, so a miss costs little, but diversified "similar" pages would decode dozens per
// request without it. The zero value is ready; a nil cache caches nothing.
type SignatureCache struct {
	mu sync.Mutex
	m  map[[32]byte]*PixelSignature
}

const maxCachedSignatures = 1024

func (c *SignatureCache) get(thumb []byte) *PixelSignature {
	if len(thumb) == 0 {
		return nil
	}
	var key [32]byte
	if c != nil {
		key = sha256.Sum256(thumb)
		c.mu.Lock()
		s, ok := c.m[key]
		c.mu.Unlock()
		if ok {
			return s
		}
	}
	s, err := NewPixelSignature(thumb)
	if err != nil {
		return nil
	}
	s.compact()
	if c != nil {
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxCachedSignatures {
			c.m = map[[32]byte]*PixelSignature{}
		}
		c.m[key] = s
		c.mu.Unlock()
	}
	return s
}

// sigCache keeps the signatures used by one request, backed by the shared cache.
type sigCache struct {
	shared *SignatureCache
	local  map[string]*PixelSignature
}

func newSigCache(shared *SignatureCache) *sigCache {
	return &sigCache{shared: shared, local: map[string]*PixelSignature{}}
}

func (c *sigCache) get(id string, thumb []byte) *PixelSignature {
	if s, ok := c.local[id]; ok {
		return s
	}
	s := c.shared.get(thumb) // nil when the thumbnail is missing or unreadable
	c.local[id] = s
	return s
}

// match is the PixelMatch of two items, 0 when either has no usable thumbnail.
func (c *sigCache) match(aID string, a []byte, bID string, b []byte) float64 {
	sa, sb := c.get(aID, a), c.get(bID, b)
	if sa == nil || sb == nil {
		return 0
	}
	return PixelMatch(sa, sb)
}

// maxClusterSize bounds the neighbours fetched per seed (the work per scanned item).
const maxClusterSize = 50

// FindDuplicates scans up to limit items with ids after cursor and returns the clusters they seed.
// A cluster is a seed and its neighbours at or above the tier's threshold; it is reported only by its
// smallest id, so every cluster appears on exactly one page without any state kept between pages.
// The work per page is limit nearest-neighbour searches, whatever the catalog's size.
// cache may be nil.
func FindDuplicates(ctx context.Context, col *index.Collection, t Tiers, tier, cursor string, limit int, cache *SignatureCache) (DupPage, error) {
	th, err := t.threshold(tier)
	if err != nil {
		return DupPage{}, err
	}
	if tier == "" {
		tier = TierNear
	}
	page := DupPage{Tier: tier, Threshold: th, Clusters: []DupCluster{}}
	items, next, err := col.List(cursor, limit)
	if err != nil {
		return page, err
	}
	page.NextCursor = next
	name := col.Name()
	sigs := newSigCache(cache)
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return page, err
		}
		page.Scanned++
		res, err := col.Similar(ctx, it.ID, index.SearchOptions{K: maxClusterSize, MinScore: &th})
		if errors.Is(err, index.ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return page, err
		}
		if len(res) == 0 {
			continue
		}
		seedThumb, _ := col.Thumbnail(it.ID)
		cl := DupCluster{Items: []DupMember{{ID: it.ID, Score: 1, Tier: TierExact, Metadata: metadataOrEmpty(it.Metadata), ThumbnailURL: thumbnailURL(name, it.ID)}}}
		for _, r := range res {
			pt := TierSimilar
			if r.Score >= t.Near {
				other, _ := col.Thumbnail(r.ID)
				pt = t.PairTier(r.Score, len(seedThumb) > 0 && bytes.Equal(seedThumb, other), sigs.match(it.ID, seedThumb, r.ID, other))
			}
			if tierRank(pt) < tierRank(tier) {
				continue
			}
			cl.Items = append(cl.Items, DupMember{ID: r.ID, Score: r.Score, Tier: pt, Metadata: metadataOrEmpty(r.Metadata), ThumbnailURL: thumbnailURL(name, r.ID)})
		}
		// Reported by its smallest id only (a cluster is found again from each of its members).
		if len(cl.Items) > 1 && !slices.ContainsFunc(cl.Items[1:], func(m DupMember) bool { return m.ID < it.ID }) {
			page.Clusters = append(page.Clusters, cl)
		}
	}
	return page, nil
}

func (s *Server) handleDuplicates(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	limit := 200
	if v := c.Query("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return badRequest("limit must be in 1..1000, got %q", v)
		}
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	page, err := FindDuplicates(ctx, col, TiersFrom(s.cfg.Intel), strings.Clone(c.Query("tier")), strings.Clone(c.Query("cursor")), limit, &s.signatures)
	if err != nil {
		return err
	}
	return c.JSON(page)
}

// --- ingest duplicates ----------------------------------------------------------------------

// Ingest policies for an item that duplicates a stored one (near or exact tier).
const (
	dupAllow  = "allow"  // store it and report near_duplicate_of
	dupReject = "reject" // refuse it: 409 duplicate
	dupMerge  = "merge"  // store nothing new: add its missing metadata fields to the existing item
)

// duplicatePolicy reads on_duplicate from the query string or a form field, defaulting to the config.
func (s *Server) duplicatePolicy(c *fiber.Ctx) (string, error) {
	v := strings.TrimSpace(c.Query("on_duplicate"))
	if v == "" && mediaType(c) == fiber.MIMEMultipartForm {
		if form, err := c.MultipartForm(); err == nil {
			if vs := form.Value["on_duplicate"]; len(vs) > 0 {
				v = strings.TrimSpace(vs[0])
			}
		}
	}
	if v == "" {
		v = s.cfg.Intel.OnDuplicate
	}
	switch v {
	case dupAllow, dupReject, dupMerge:
		return strings.Clone(v), nil
	}
	return "", badRequest("on_duplicate must be allow, reject or merge, got %q", v)
}

// findDuplicate returns the closest stored item (other than id) in the near or exact tier.
func (s *Server) findDuplicate(ctx context.Context, col *index.Collection, id string, vec []float32, thumb []byte) *nearDuplicate {
	t := TiersFrom(s.cfg.Intel)
	res, err := col.Search(ctx, vec, index.SearchOptions{K: 3, MinScore: &t.Near, ExcludeIDs: []string{id}})
	if err != nil {
		return nil
	}
	sigs := newSigCache(&s.signatures)
	for _, r := range res {
		other, _ := col.Thumbnail(r.ID)
		tier := t.PairTier(r.Score, len(other) > 0 && bytes.Equal(other, thumb), sigs.match("\x00new", thumb, r.ID, other))
		if tier == TierExact || tier == TierNear {
			return &nearDuplicate{ID: r.ID, Score: r.Score, Tier: tier}
		}
	}
	return nil
}

// --- diversification ------------------------------------------------------------------------

// diversify drops every result that is in tier (or a stronger one) with a better-ranked kept
// result, so a page shows different products instead of copies of one photo. Vectors and
// thumbnails come from the store; pixel checks run only for pairs past the cosine gate.
func diversify(col *index.Collection, res []index.Result, t Tiers, tier string, cache *SignatureCache) []index.Result {
	kept := res[:0:0]
	var keptItems []index.Item
	sigs := newSigCache(cache)
	gate, _ := t.threshold(tier)
	for _, r := range res {
		it, err := col.Get(r.ID)
		if err != nil {
			continue // deleted meanwhile
		}
		dup := false
		for _, k := range keptItems {
			s := dot(k.Vector, it.Vector)
			if s < gate {
				continue
			}
			pt := TierSimilar
			if s >= t.Near {
				pt = t.PairTier(s, len(k.Thumbnail) > 0 && bytes.Equal(k.Thumbnail, it.Thumbnail), sigs.match(k.ID, k.Thumbnail, it.ID, it.Thumbnail))
			}
			if tierRank(pt) >= tierRank(tier) {
				dup = true
				break
			}
		}
		if !dup {
			kept = append(kept, r)
			keptItems = append(keptItems, it)
		}
	}
	return kept
}

// diversifyByCosine is the fast default of diversify: a result whose vector is at least score
// (cosine) close to a better-ranked kept one is dropped. Without decoding thumbnails it costs a
// vector read per result, keeping similar-by-id in the low milliseconds; it misses the heavier
// edits (crops, watermarks) that the pixel test of diversify catches.
func diversifyByCosine(col *index.Collection, res []index.Result, score float32) []index.Result {
	kept := res[:0:0]
	var keptVecs [][]float32
	for _, r := range res {
		v, err := col.Vector(r.ID)
		if err != nil {
			continue // deleted meanwhile
		}
		dup := false
		for _, k := range keptVecs {
			if dot(k, v) >= score {
				dup = true
				break
			}
		}
		if !dup {
			kept = append(kept, r)
			keptVecs = append(keptVecs, v)
		}
	}
	return kept
}

func dot(a, b []float32) float32 {
	var s float32
	for i := range min(len(a), len(b)) {
		s += a[i] * b[i]
	}
	return s
}

// --- tag suggestions ------------------------------------------------------------------------

// TagSuggestion is one suggested value of a field. Confidence is the similarity-weighted share of
// the labelled neighbours that carry the value (0..1).
type TagSuggestion struct {
	Value      string  `json:"value"`
	Confidence float64 `json:"confidence"`
	Votes      int     `json:"votes"`
}

// autoTaggedField records, in an item's metadata, which fields were written by suggestion (field →
// confidence), so curated and suggested values can be told apart and suggestions never vote.
const autoTaggedField = "auto_tagged"

// SuggestTags votes on every keyword field (string or array of strings) of the k nearest neighbours
// of vec that carry the field; self is excluded. Fields written by suggestion do not vote.
func SuggestTags(ctx context.Context, col *index.Collection, vec []float32, self string, k int) (map[string][]TagSuggestion, error) {
	if k <= 0 {
		k = 15
	}
	opts := index.SearchOptions{K: min(4*k, index.MaxK)}
	if self != "" {
		opts.ExcludeIDs = []string{self}
	}
	res, err := col.Search(ctx, vec, opts)
	if err != nil {
		return nil, err
	}
	return voteTags(res, k), nil
}

// voteTemperature sharpens the similarity weights: a neighbour 0.1 less similar counts e^-1 as
// much. Plain cosine weights let far neighbours outvote near ones in small or sparse catalogs
// (cosines of unrelated photos are 0.5-0.7, not 0); on Fashion-MNIST both give the same accuracy
// (docs/intelligence.md).
const voteTemperature = 0.1

func voteTags(res []index.Result, k int) map[string][]TagSuggestion {
	type tally struct {
		total   float64
		voters  int
		weights map[string]float64
		votes   map[string]int
	}
	fields := map[string]*tally{}
	for _, r := range res {
		var obj map[string]any
		if len(r.Metadata) == 0 || json.Unmarshal(r.Metadata, &obj) != nil {
			continue
		}
		auto, _ := obj[autoTaggedField].(map[string]any)
		w := math.Exp((float64(r.Score) - 1) / voteTemperature)
		for f, v := range obj {
			if f == autoTaggedField || auto[f] != nil {
				continue
			}
			var vals []string
			switch x := v.(type) {
			case string:
				vals = []string{x}
			case []any:
				for _, e := range x {
					if s, ok := e.(string); ok {
						vals = append(vals, s)
					}
				}
			default:
				continue
			}
			t := fields[f]
			if t == nil {
				t = &tally{weights: map[string]float64{}, votes: map[string]int{}}
				fields[f] = t
			}
			if t.voters >= k {
				continue
			}
			t.voters++
			t.total += w
			for _, s := range vals {
				t.weights[s] += w
				t.votes[s]++
			}
		}
	}
	out := map[string][]TagSuggestion{}
	for f, t := range fields {
		if t.total <= 0 {
			continue
		}
		var sug []TagSuggestion
		for v, w := range t.weights {
			sug = append(sug, TagSuggestion{Value: v, Confidence: math.Round(w/t.total*1000) / 1000, Votes: t.votes[v]})
		}
		sort.Slice(sug, func(i, j int) bool {
			if sug[i].Confidence != sug[j].Confidence {
				return sug[i].Confidence > sug[j].Confidence
			}
			return sug[i].Value < sug[j].Value
		})
		out[f] = sug[:min(len(sug), 5)]
	}
	return out
}

type tagsSuggestResponse struct {
	ID          string                     `json:"id,omitempty"`
	Suggestions map[string][]TagSuggestion `json:"suggestions"`
	Labels      []labelJSON                `json:"labels"`
	Model       string                     `json:"model"`
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
		embs, err := s.embedAdmitted(ctx, embed.Image{Data: req.Image, Crop: req.crop})
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
	if out.Suggestions, err = SuggestTags(ctx, col, vec, req.ID, req.K); err != nil {
		return err
	}
	return c.JSON(out)
}

// TagOptions configure TagItems.
type TagOptions struct {
	K             int      // neighbours voting; 0 = 15
	MinConfidence float64  // suggestions below this are not written
	Overwrite     bool     // replace curated values too (default: fill only missing fields)
	DryRun        bool     // report without writing
	Fields        []string // fields to fill; empty = every keyword field the neighbours carry
}

// TagChange is one field written (or, in a dry run, that would be).
type TagChange struct {
	ID         string  `json:"id"`
	Field      string  `json:"field"`
	Value      string  `json:"value"`
	Previous   any     `json:"previous,omitempty"`
	Confidence float64 `json:"confidence"`
}

// TagReport summarises one TagItems page.
type TagReport struct {
	Scanned       int            `json:"scanned"`
	Updated       int            `json:"updated"`
	Written       map[string]int `json:"written"`        // field → values written
	LowConfidence int            `json:"low_confidence"` // suggestions left out for their confidence
	Changes       []TagChange    `json:"changes"`
	NextCursor    string         `json:"next_cursor"`
	DryRun        bool           `json:"dry_run"`
}

// TagItems fills the missing fields of up to limit items after cursor with their best suggestion
// when its confidence reaches o.MinConfidence, and records them under metadata.auto_tagged.
// Curated values are kept unless o.Overwrite. Fields whose values are lists (tags) get the list of
// suggested values at or above the threshold.
func TagItems(ctx context.Context, col *index.Collection, cursor string, limit int, o TagOptions) (TagReport, error) {
	rep := TagReport{Written: map[string]int{}, Changes: []TagChange{}, DryRun: o.DryRun}
	items, next, err := col.List(cursor, limit)
	if err != nil {
		return rep, err
	}
	rep.NextCursor = next
	for _, li := range items {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rep.Scanned++
		it, err := col.Get(li.ID)
		if errors.Is(err, index.ErrNotFound) {
			continue
		}
		if err != nil {
			return rep, err
		}
		sug, err := SuggestTags(ctx, col, it.Vector, it.ID, o.K)
		if err != nil {
			return rep, err
		}
		meta := map[string]any{}
		if len(it.Metadata) > 0 {
			if err := json.Unmarshal(it.Metadata, &meta); err != nil {
				continue
			}
		}
		auto, _ := meta[autoTaggedField].(map[string]any)
		if auto == nil {
			auto = map[string]any{}
		}
		changed := false
		fieldNames := make([]string, 0, len(sug))
		for f := range sug {
			fieldNames = append(fieldNames, f)
		}
		sort.Strings(fieldNames)
		for _, f := range fieldNames {
			if len(o.Fields) > 0 && !slices.Contains(o.Fields, f) {
				continue
			}
			prev, has := meta[f]
			curated := has && auto[f] == nil
			if curated && !o.Overwrite {
				continue
			}
			best := sug[f][0]
			if best.Confidence < o.MinConfidence {
				rep.LowConfidence++
				continue
			}
			var val any = best.Value
			if _, isList := prev.([]any); isList || listField(f) {
				var vals []string
				for _, s := range sug[f] {
					if s.Confidence >= o.MinConfidence {
						vals = append(vals, s.Value)
					}
				}
				val = vals
			}
			if has && fmt.Sprint(prev) == fmt.Sprint(val) {
				continue
			}
			meta[f] = val
			auto[f] = best.Confidence
			changed = true
			rep.Written[f]++
			ch := TagChange{ID: it.ID, Field: f, Value: best.Value, Confidence: best.Confidence}
			if has {
				ch.Previous = prev
			}
			rep.Changes = append(rep.Changes, ch)
		}
		if !changed {
			continue
		}
		rep.Updated++
		if o.DryRun {
			continue
		}
		meta[autoTaggedField] = auto
		b, err := json.Marshal(meta)
		if err != nil {
			return rep, err
		}
		if len(b) > index.MaxMetadataLen {
			continue
		}
		it.Metadata, it.UpdatedAt = b, time.Now().UTC()
		if err := col.Upsert(ctx, it); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// listField says which missing fields are written as lists: the vote does not keep the JSON shape,
// so the conventional list fields are named (a present field keeps its own shape).
func listField(f string) bool {
	return f == "tags" || f == "labels"
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
		if mediaType(c) != fiber.MIMEApplicationJSON {
			return errorf(http.StatusUnsupportedMediaType, "unsupported_content_type", "send application/json")
		}
		if err := decodeJSONBody(c.Body(), &req); err != nil {
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
	o := TagOptions{K: orDefault(req.K, s.cfg.Intel.TagNeighbors), MinConfidence: s.cfg.Intel.TagMinConfidence,
		Overwrite: req.Overwrite, DryRun: req.DryRun, Fields: req.Fields}
	if req.MinConfidence != nil {
		o.MinConfidence = *req.MinConfidence
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	rep, err := TagItems(ctx, col, req.Cursor, req.Limit, o)
	if err != nil {
		return err
	}
	return c.JSON(rep)
}

// --- explain --------------------------------------------------------------------------------

// Heatmap returns, for each spatial cell of a [C,H,W] feature map, the cosine of the cell's
// C-vector with q (H*W values, row-major). Cells with a zero vector score 0.
func Heatmap(fmap []float32, shape [3]int, q []float32) ([]float32, error) {
	c, h, w := shape[0], shape[1], shape[2]
	if c != len(q) || len(fmap) != c*h*w || h == 0 || w == 0 {
		return nil, fmt.Errorf("feature map %v does not match a %d-d query", shape, len(q))
	}
	var qn float64
	for _, v := range q {
		qn += float64(v) * float64(v)
	}
	qn = math.Sqrt(qn)
	out := make([]float32, h*w)
	for cell := range h * w {
		var d, n float64
		for ch := range c {
			v := float64(fmap[ch*h*w+cell])
			d += v * float64(q[ch])
			n += v * v
		}
		if n > 0 && qn > 0 {
			out[cell] = float32(d / (math.Sqrt(n) * qn))
		}
	}
	return out, nil
}

// cropBox is the part of an image the model saw (the centre crop of its preprocessing), in the
// image's pixels.
func cropBox(w, h int, ms spec.Model) image.Rectangle {
	if ms.Crop == "squash" || ms.InputSize == 0 {
		return image.Rect(0, 0, w, h)
	}
	side := float64(min(w, h)) * float64(ms.InputSize) / float64(ms.ResizeTarget())
	x0, y0 := (float64(w)-side)/2, (float64(h)-side)/2
	return image.Rect(int(x0+0.5), int(y0+0.5), int(x0+side+0.5), int(y0+side+0.5))
}

// RenderHeatmap blends the heatmap (gh×gw cells over box) onto img: warm colours where the region
// matches the query, the area outside the model's crop dimmed. Values are scaled from the map's own
// minimum to its maximum so the contrast shows where, not how much; the score says how much.
func RenderHeatmap(img image.Image, heat []float32, gh, gw int, box image.Rectangle, alpha float64) *image.NRGBA {
	b := img.Bounds()
	out := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, v := range heat {
		lo, hi = min(lo, v), max(hi, v)
	}
	span := hi - lo
	if span < 1e-6 {
		span = 1
	}
	sample := func(x, y int) float64 {
		// Bilinear over cell centres.
		fx := (float64(x-box.Min.X)+0.5)/float64(box.Dx())*float64(gw) - 0.5
		fy := (float64(y-box.Min.Y)+0.5)/float64(box.Dy())*float64(gh) - 0.5
		fx, fy = math.Max(0, math.Min(fx, float64(gw-1))), math.Max(0, math.Min(fy, float64(gh-1)))
		x0, y0 := int(fx), int(fy)
		x1, y1 := min(x0+1, gw-1), min(y0+1, gh-1)
		ax, ay := fx-float64(x0), fy-float64(y0)
		at := func(cx, cy int) float64 { return float64((heat[cy*gw+cx] - lo) / span) }
		return (at(x0, y0)*(1-ax)+at(x1, y0)*ax)*(1-ay) + (at(x0, y1)*(1-ax)+at(x1, y1)*ax)*ay
	}
	for y := range b.Dy() {
		for x := range b.Dx() {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			pr, pg, pb := float64(r>>8), float64(g>>8), float64(bl>>8)
			if !(image.Point{x, y}).In(box) {
				out.SetNRGBA(x, y, color.NRGBA{uint8(pr * 0.35), uint8(pg * 0.35), uint8(pb * 0.35), 255})
				continue
			}
			cr, cg, cb := heatColour(sample(x, y))
			a := alpha
			out.SetNRGBA(x, y, color.NRGBA{uint8(pr*(1-a) + cr*a), uint8(pg*(1-a) + cg*a), uint8(pb*(1-a) + cb*a), 255})
		}
	}
	return out
}

// heatColour maps 0..1 to blue → cyan → yellow → red.
func heatColour(v float64) (r, g, b float64) {
	v = math.Max(0, math.Min(1, v))
	switch {
	case v < 1.0/3:
		t := v * 3
		return 0, 255 * t, 255
	case v < 2.0/3:
		t := (v - 1.0/3) * 3
		return 255 * t, 255, 255 * (1 - t)
	default:
		t := (v - 2.0/3) * 3
		return 255, 255 * (1 - t), 0
	}
}

type explainJSON struct {
	QueryID string      `json:"query_id,omitempty"`
	ID      string      `json:"id"`
	Score   float32     `json:"score"`
	Rows    int         `json:"rows"`
	Cols    int         `json:"cols"`
	Grid    [][]float32 `json:"grid"`
	Min     float32     `json:"min"`
	Max     float32     `json:"max"`
	// Crop is the region of the thumbnail the grid covers, in thumbnail pixels.
	Crop [4]int `json:"crop"`
}

// handleExplain: GET ?query_id=&id= (stored query) or POST multipart/JSON with image (or query_id)
// and id. It answers a PNG of the result's thumbnail with the heatmap, or JSON with format=json.
func (s *Server) handleExplain(c *fiber.Ctx) error {
	col, err := s.embeddable(c)
	if err != nil {
		return err
	}
	if s.eng.Info().Spec.FeatureMapTensor == "" {
		return errorf(http.StatusNotImplemented, "explain_unavailable",
			"the model has no spatial feature map configured (set model.feature_map_tensor, e.g. 627_quantized)")
	}
	var queryID, id, format, alphaS string
	var queryImg []byte
	var crop *embed.Rect
	get := func(name string) string { return strings.Clone(strings.TrimSpace(c.Query(name))) }
	queryID, id, format, alphaS = get("query_id"), get("id"), get("format"), get("alpha")
	switch mt := mediaType(c); {
	case c.Method() == http.MethodGet:
	case mt == fiber.MIMEMultipartForm:
		form, err := c.MultipartForm()
		if err != nil {
			return badRequest("malformed multipart body: %v", err)
		}
		if files := form.File["image"]; len(files) > 0 {
			if queryImg, err = readFormFile(files[0]); err != nil {
				return err
			}
		}
		for k, dst := range map[string]*string{"query_id": &queryID, "id": &id, "format": &format, "alpha": &alphaS} {
			if v := form.Value[k]; len(v) > 0 && *dst == "" {
				*dst = strings.Clone(strings.TrimSpace(v[0]))
			}
		}
		if v := form.Value["crop"]; len(v) > 0 {
			if crop, err = parseCrop(json.RawMessage(strconv.Quote(v[0]))); err != nil {
				return err
			}
		}
	case mt == fiber.MIMEApplicationJSON:
		var body struct {
			Image   string          `json:"image"`
			QueryID string          `json:"query_id"`
			ID      string          `json:"id"`
			Crop    json.RawMessage `json:"crop"`
			Format  string          `json:"format"`
			Alpha   *float64        `json:"alpha"`
		}
		if err := decodeJSONBody(c.Body(), &body); err != nil {
			return err
		}
		if body.Image != "" {
			if queryImg, err = decodeBase64Image(body.Image); err != nil {
				return err
			}
		}
		if crop, err = parseCrop(body.Crop); err != nil {
			return err
		}
		queryID, id, format = cmp.Or(queryID, body.QueryID), cmp.Or(id, body.ID), cmp.Or(format, body.Format)
		if body.Alpha != nil && alphaS == "" {
			alphaS = strconv.FormatFloat(*body.Alpha, 'f', -1, 64)
		}
	default:
		return errorf(http.StatusUnsupportedMediaType, "unsupported_content_type", "send multipart/form-data or application/json (image, id), or use GET with query_id and id")
	}
	alpha := 0.5
	if alphaS != "" {
		if alpha, err = strconv.ParseFloat(alphaS, 64); err != nil || !(alpha >= 0 && alpha <= 1) { // NaN fails
			return invalidQuery("alpha", "alpha must be a number in 0..1, got %q", alphaS)
		}
	}
	switch {
	case id == "":
		return badRequest("id (the result to explain) is required")
	case queryID == "" && queryImg == nil:
		return badRequest("give the query as query_id or as an uploaded image")
	case queryID != "" && queryImg != nil:
		return badRequest("give only one of query_id and image")
	case format != "" && format != "png" && format != "json":
		return badRequest("format must be png or json, got %q", format)
	}
	target, err := col.Get(id)
	if err != nil {
		return itemErr(err, col, id)
	}
	if len(target.Thumbnail) == 0 {
		return errorf(http.StatusConflict, "no_thumbnail", "item %q has no stored thumbnail to explain", id)
	}
	imgs := []embed.Image{{Data: target.Thumbnail}}
	var query []float32
	if queryID != "" {
		q, err := col.Get(queryID)
		if err != nil {
			return itemErr(err, col, queryID)
		}
		query = q.Vector
	} else {
		imgs = append(imgs, embed.Image{Data: queryImg, Crop: crop})
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	embs, err := s.embedAdmitted(ctx, imgs...)
	if err != nil {
		return err
	}
	if query == nil {
		query = embs[1].Vector
	}
	fm := embs[0]
	heat, err := Heatmap(fm.FeatureMap, fm.FeatureMapShape, query)
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	thumb, err := jpeg.Decode(bytes.NewReader(target.Thumbnail))
	if err != nil {
		return fmt.Errorf("explain: stored thumbnail of %q: %w", id, err)
	}
	box := cropBox(thumb.Bounds().Dx(), thumb.Bounds().Dy(), s.eng.Info().Spec)
	gh, gw := fm.FeatureMapShape[1], fm.FeatureMapShape[2]
	score := dot(query, target.Vector)
	c.Set("X-Match-Score", strconv.FormatFloat(float64(score), 'f', 4, 32))
	if format == "json" {
		out := explainJSON{QueryID: queryID, ID: id, Score: score, Rows: gh, Cols: gw, Min: heat[0], Max: heat[0],
			Crop: [4]int{box.Min.X, box.Min.Y, box.Dx(), box.Dy()}}
		for r := range gh {
			out.Grid = append(out.Grid, heat[r*gw:(r+1)*gw])
		}
		for _, v := range heat {
			out.Min, out.Max = min(out.Min, v), max(out.Max, v)
		}
		return c.JSON(out)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, RenderHeatmap(thumb, heat, gh, gw, box, alpha)); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "image/png")
	c.Set(fiber.HeaderCacheControl, "private, max-age=60")
	return c.Send(buf.Bytes())
}

// registerIntelRoutes adds the catalog-intelligence routes.
func (s *Server) registerIntelRoutes(v1 fiber.Router, read, write fiber.Handler) {
	v1.Post("/collections/:c/tags\\:suggest", read, s.handleSuggestTags)
	v1.Post("/collections/:c/tags\\:apply", write, s.handleApplyTags)
	v1.Get("/collections/:c/duplicates", read, s.handleDuplicates)
	v1.Get("/collections/:c/search/explain", read, s.handleExplain)
	v1.Post("/collections/:c/search/explain", read, s.handleExplain)
}

// --- pixel verification ---------------------------------------------------------------------

// PixelSignature is a small grey-level copy of a thumbnail, for checking that two photos show the
// same pixels (the embedding alone cannot tell a re-encoded copy from another photo of the same
// product taken a moment later: their cosines overlap, see docs/intelligence.md).
type PixelSignature struct {
	w, h int
	px   []float32
	grid []float32   // whole(), lazily
	wins [][]float32 // windows(), lazily
}

// sigSide is the signature's longer side in pixels.
const sigSide = 96

// NewPixelSignature decodes a JPEG thumbnail into a signature.
func NewPixelSignature(thumb []byte) (*PixelSignature, error) {
	img, err := jpeg.Decode(bytes.NewReader(thumb))
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	if b.Dx() < 8 || b.Dy() < 8 {
		return nil, fmt.Errorf("thumbnail %dx%d is too small", b.Dx(), b.Dy())
	}
	scale := float64(sigSide) / float64(max(b.Dx(), b.Dy()))
	w, h := max(8, int(float64(b.Dx())*scale+0.5)), max(8, int(float64(b.Dy())*scale+0.5))
	sum := make([]float32, w*h)
	cnt := make([]float32, w*h)
	gray := func(x, y int) float32 {
		switch im := img.(type) {
		case *image.YCbCr:
			return float32(im.Y[im.YOffset(x, y)])
		case *image.Gray:
			return float32(im.Pix[im.PixOffset(x, y)])
		}
		r, g, bl, _ := img.At(x, y).RGBA()
		return float32(0.299*float64(r>>8) + 0.587*float64(g>>8) + 0.114*float64(bl>>8))
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		sy := min(h-1, int(float64(y-b.Min.Y)*scale))
		for x := b.Min.X; x < b.Max.X; x++ {
			sx := min(w-1, int(float64(x-b.Min.X)*scale))
			sum[sy*w+sx] += gray(x, y)
			cnt[sy*w+sx]++
		}
	}
	for i := range sum {
		if cnt[i] > 0 {
			sum[i] /= cnt[i]
		}
	}
	return &PixelSignature{w: w, h: h, px: sum}, nil
}

func (s *PixelSignature) at(x, y float64) float32 {
	x, y = math.Max(0, math.Min(x, float64(s.w-1))), math.Max(0, math.Min(y, float64(s.h-1)))
	x0, y0 := int(x), int(y)
	x1, y1 := min(x0+1, s.w-1), min(y0+1, s.h-1)
	ax, ay := float32(x-float64(x0)), float32(y-float64(y0))
	return (s.px[y0*s.w+x0]*(1-ax)+s.px[y0*s.w+x1]*ax)*(1-ay) + (s.px[y1*s.w+x0]*(1-ax)+s.px[y1*s.w+x1]*ax)*ay
}

// PixelMatch is the best normalised cross-correlation (-1..1) between one signature and a
// sub-rectangle of the other (the whole, or 90% of its sides at nine places), in both directions,
// so re-encoding, resizing, a brightness or contrast change and a crop of about 10% all score near
// 1, while another photo of the same object, taken from a slightly different place, scores lower.
// About 20 correlations of 32x32 samples: well under a millisecond.
func PixelMatch(a, b *PixelSignature) float64 {
	best := dotf(a.whole(), b.whole())
	best = math.Max(best, matchInto(a, b))
	return math.Max(best, matchInto(b, a))
}

const gridSide = 32

func dotf(a, b []float32) float64 {
	var d float64
	for i := range a {
		d += float64(a[i]) * float64(b[i])
	}
	return d
}

// whole is the signature resampled to the grid, zero-mean and unit-norm (computed once).
func (s *PixelSignature) whole() []float32 {
	if s.grid == nil {
		s.grid = s.sample(0, 0, float64(s.w), float64(s.h))
	}
	return s.grid
}

// sample resamples the rectangle (ox, oy, rw, rh) to the grid and normalises it; all zeros when flat.
func (s *PixelSignature) sample(ox, oy, rw, rh float64) []float32 {
	v := make([]float64, gridSide*gridSide)
	var m float64
	for y := range gridSide {
		for x := range gridSide {
			p := float64(s.at(ox+(float64(x)+0.5)*rw/gridSide-0.5, oy+(float64(y)+0.5)*rh/gridSide-0.5))
			v[y*gridSide+x] = p
			m += p
		}
	}
	m /= float64(len(v))
	var ss float64
	for i := range v {
		v[i] -= m
		ss += v[i] * v[i]
	}
	out := make([]float32, len(v))
	if ss < 1e-6 {
		return out
	}
	n := math.Sqrt(ss)
	for i := range v {
		out[i] = float32(v[i] / n)
	}
	return out
}

// compact computes the grids PixelMatch reads and drops the pixels: ~40 KB kept per signature.
func (s *PixelSignature) compact() *PixelSignature {
	s.whole()
	s.windows()
	s.px = nil
	return s
}

// matchInto correlates a (whole) with 90% sub-rectangles of b at nine places.
func matchInto(a, b *PixelSignature) float64 {
	av := a.whole()
	best := -1.0
	for _, w := range b.windows() {
		best = math.Max(best, dotf(av, w))
	}
	return best
}

// windows are the nine 90% sub-rectangles of the signature, resampled (computed once).
func (s *PixelSignature) windows() [][]float32 {
	if s.wins == nil {
		const scale = 0.9
		rw, rh := float64(s.w)*scale, float64(s.h)*scale
		for iy := range 3 {
			for ix := range 3 {
				ox, oy := (float64(s.w)-rw)*float64(ix)/2, (float64(s.h)-rh)*float64(iy)/2
				s.wins = append(s.wins, s.sample(ox, oy, rw, rh))
			}
		}
	}
	return s.wins
}
