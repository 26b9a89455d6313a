package index

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/lookalike/lookalike/rerank"
)

// Item is one indexed product image. Vector is normalised on Upsert.
type Item struct {
	ID        string          `json:"id"`
	Vector    []float32       `json:"vector,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	Thumbnail []byte          `json:"-"`
	// Source is an optional rendition of the original photo (larger than the thumbnail), kept so
	// that the catalog can be embedded again under another profile or model without the uploads.
	// Stored in its own bucket; nil when the item has none.
	Source      []byte    `json:"-"`
	ContentHash string    `json:"content_hash,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Version is set by reads: the collection's write sequence number of the
	// item's last change. It only grows, so clients can send it back as a
	// precondition.
	Version uint64 `json:"version,omitempty"`
	// IfVersion, when non-zero on a write, is a precondition: the stored item
	// must be at exactly this version, or the write fails with
	// ErrVersionConflict and nothing is written.
	IfVersion uint64 `json:"-"`
}

// Limits on items.
const (
	MaxIDLen       = 256
	MaxMetadataLen = 64 << 10
	MaxThumbLen    = 4 << 20
	MaxSourceLen   = 16 << 20
)

// Collection is a named set of items with one HNSW graph.
//
// Locking story (the only one in this package):
//   - wmu serialises mutators (Upsert, Delete, snapshot, drop). bbolt is
//     written first, under wmu, so the on-disk order is the apply order.
//   - mu guards all in-memory state (graph, id maps, metadata). Searches and
//     reads hold mu.RLock. A mutator computes graph changes under mu.RLock
//     (searches run concurrently; no other mutator can interleave because it
//     holds wmu) and applies them under a short mu.Lock.
type Collection struct {
	db   *DB
	name string
	cfg  CollectionConfig

	wmu sync.Mutex

	mu       sync.RWMutex
	closed   bool
	dropped  bool // closed by DropCollection, not by DB.Close
	frozen   bool // a generation its alias does not name: client writes refused (generation.go)
	g        *graph
	rr       *rerank.State     // neighbour lists and k-reciprocal rows (rerank.go)
	rrReady  bool              // rr is loaded (Open may load it after returning: startRerank)
	rrSkip   bool              // benchmarks only: writes leave rr alone (what keeping it costs)
	ids      []string          // slot -> id ("" = free)
	byID     map[string]uint32 // id -> slot
	hashes   []string
	metas    []json.RawMessage
	attrs    []attrs
	postings map[string]map[uint32]struct{} // field NUL value -> slots
	fields   map[string]int                 // field -> items with a value in it (query.go)
	free     []uint32
	hidden   map[uint32]bool // linked slots searches skip: an item's vector mid-move (write.go)
	seq      uint64          // last persisted write sequence number
	snapSeq  uint64          // seq of the stored snapshot

	// While startRerank's loader runs (!rrReady), writes leave rr to it: they name their slots
	// in rrPending, which the loader replays once its rows are built (under wmu).
	rrPending map[uint32]bool
	rrDone    chan struct{} // closed when an asynchronous load ends (nil: none was started)

	loadedFrom string // "snapshot", "rebuild" or "empty", for logs and tests
	itemsFrom  string // "catalog" or "records": where Open read the items, for logs and tests
	rrFrom     string // how the re-ranking lists were loaded, for logs and tests
}

func newCollection(db *DB, name string, cfg CollectionConfig) *Collection {
	return &Collection{
		db: db, name: name, cfg: cfg,
		g:          newGraph(cfg.Dims, cfg.M, cfg.EfConstruction, db.opts.Ml, time.Now().UnixNano()),
		rr:         rerank.NewDefault(),
		rrReady:    true,
		byID:       map[string]uint32{},
		hidden:     map[uint32]bool{},
		postings:   map[string]map[uint32]struct{}{},
		loadedFrom: "empty",
	}
}

func (c *Collection) checkFingerprint(cfg CollectionConfig) error {
	if cfg.Fingerprint != c.cfg.Fingerprint || cfg.Dims != c.cfg.Dims {
		return fmt.Errorf("%w: collection %q holds %q (%d dims), asked for %q (%d dims)",
			ErrFingerprintMismatch, c.name, c.cfg.Fingerprint, c.cfg.Dims, cfg.Fingerprint, cfg.Dims)
	}
	return nil
}

func (c *Collection) markClosed() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// markDropped closes the collection for good: its bucket is gone.
func (c *Collection) markDropped() {
	c.mu.Lock()
	c.closed, c.dropped = true, true
	c.mu.Unlock()
}

// Fingerprint names the model and preprocessing of the stored vectors.
func (c *Collection) Fingerprint() string { return c.cfg.Fingerprint }

// Name is the collection's name.
func (c *Collection) Name() string { return c.name }

// Info describes the collection. DiskBytes is the bbolt pages its buckets use.
func (c *Collection) Info() CollectionInfo {
	c.mu.RLock()
	info := CollectionInfo{
		Name: c.name, Fingerprint: c.cfg.Fingerprint, Dims: c.cfg.Dims,
		Count: c.g.count, Levels: c.g.maxLevel() + 1,
		M: c.cfg.M, EfConstruction: c.cfg.EfConstruction, EfSearch: c.cfg.EfSearch,
		RerankReady: c.rrReady,
	}
	closed := c.closed
	c.mu.RUnlock()
	if !closed {
		_ = c.db.bolt.View(func(tx *bolt.Tx) error {
			if b := c.bucket(tx); b != nil {
				s := b.Stats()
				info.DiskBytes = int64(s.BranchAlloc + s.LeafAlloc)
			}
			return nil
		})
	}
	return info
}

func (c *Collection) bucket(tx *bolt.Tx) *bolt.Bucket {
	root := tx.Bucket(bucketCollections)
	if root == nil {
		return nil
	}
	return root.Bucket([]byte(c.name))
}

func (c *Collection) usable() error {
	if c.dropped {
		return fmt.Errorf("%w: collection %q", ErrDropped, c.name)
	}
	if c.db.closed.Load() || c.closed {
		return fmt.Errorf("%w: collection %q", ErrClosed, c.name)
	}
	return nil
}

// ---- validation ----

func validID(id string) error {
	if len(id) == 0 || len(id) > MaxIDLen {
		return fmt.Errorf("id must be 1..%d bytes, got %d", MaxIDLen, len(id))
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("id %q is not valid UTF-8", id)
	}
	if id == "." || id == ".." {
		// Item URLs would resolve to their parent in a browser (/items/.. is the collection).
		return fmt.Errorf("id %q is a dot segment", id)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("id %q contains a control character", id)
		}
	}
	return nil
}

// ---- search ----

// SearchOptions tune one search. K defaults to 10; K+Offset may not exceed
// MaxK. Ef defaults to the collection's EfSearch and may not exceed MaxEf.
// Exact forces brute force. ExcludeIDs, MinScore and Offset are applied to
// the ranked results. Out-of-range values give ErrInvalidQuery.
type SearchOptions struct {
	K          int
	Ef         int
	Filter     *Filter
	Exact      bool
	ExcludeIDs []string
	// MinScore, when set, drops results scoring below it. Unset, nothing is
	// cut: cosines below zero are still the nearest items there are.
	MinScore *float32
	Offset   int
	// Rerank re-ranks the results (rerank.ModeDefault and ModeNone: plain nearest neighbours).
	// Re-ranked results are ordered by the re-ranked distance; Score stays the cosine similarity.
	Rerank rerank.Mode
}

// Result is one hit; Score is the cosine similarity.
type Result struct {
	ID       string          `json:"id"`
	Score    float32         `json:"score"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// Query limits. They are the one source of truth: the API validates its
// parameters against them and the configuration's limits.max_k may not
// exceed MaxK.
const (
	// MaxK bounds K+Offset: the result window. One search ranks at most MaxK
	// results, so pages of any size end at result MaxK.
	MaxK = 1000
	// MaxEf bounds the search beam (SearchOptions.Ef, and the widened beam of
	// a filtered search). Recall is flat well before it; beyond it a search
	// only costs more.
	MaxEf = 4096
)

// Search returns the K nearest items to query (normalised here).
func (c *Collection) Search(ctx context.Context, query []float32, o SearchOptions) ([]Result, error) {
	if len(query) != c.cfg.Dims {
		return nil, fmt.Errorf("%w: query has %d dims, collection %q has %d", ErrDimMismatch, len(query), c.name, c.cfg.Dims)
	}
	q, ok := normalize(query)
	if !ok {
		return nil, fmt.Errorf("%w: query vector has a non-finite component or zero norm", ErrInvalidQuery)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if err := c.usable(); err != nil {
		return nil, err
	}
	return c.searchLocked(q, o, noSlot)
}

// Similar searches with a stored item's vector, excluding the item itself.
func (c *Collection) Similar(ctx context.Context, id string, o SearchOptions) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, err := c.slotLocked(id)
	if err != nil {
		return nil, err
	}
	q, err := c.slotVector(s)
	if err != nil {
		return nil, err
	}
	return c.searchLocked(q, o, s)
}

const noSlot = ^uint32(0)

// searchLocked picks the strategy. Under mu.RLock.
func (c *Collection) searchLocked(q []float32, o SearchOptions, self uint32) ([]Result, error) {
	k := o.K
	if k == 0 {
		k = 10
	}
	if err := o.check(k); err != nil {
		return nil, err
	}
	need := k + o.Offset
	ef := o.Ef
	if ef == 0 {
		// Collections created before MaxEf existed may carry a larger default.
		ef = min(c.cfg.EfSearch, MaxEf)
	}
	var excl map[uint32]bool
	if len(o.ExcludeIDs) > 0 || self != noSlot {
		excl = map[uint32]bool{}
		if self != noSlot {
			excl[self] = true
		}
		for _, id := range o.ExcludeIDs {
			if s, ok := c.byID[id]; ok {
				excl[s] = true
			}
		}
	}
	var accept func(uint32) bool
	if o.Filter != nil || excl != nil || len(c.hidden) > 0 {
		f, hidden := o.Filter, c.hidden
		accept = func(s uint32) bool {
			if excl[s] || hidden[s] {
				return false
			}
			return f == nil || f.match(&c.attrs[s])
		}
	}
	var hits []cand
	if !c.rrReady && o.Rerank.KR() {
		o.Rerank = withoutKR(o.Rerank)
	}
	if o.Rerank.QE() || o.Rerank.KR() {
		hits = c.exactScoresLocked(q, c.rerankSearch(q, need, ef, o, accept, self))
	} else {
		hits = c.nearest(q, need, ef, o, accept)
	}
	out := make([]Result, 0, min(len(hits), k))
	for i, h := range hits {
		if i < o.Offset {
			continue
		}
		score := 1 - h.d
		if o.MinScore != nil && score < *o.MinScore {
			continue // re-ranked results are not in score order
		}
		// Metadata is copied: callers (HTTP handlers) may keep or modify it.
		out = append(out, Result{ID: c.ids[h.id], Score: score, Metadata: bytes.Clone(c.metas[h.id])})
	}
	return out, nil
}

// nearest picks the strategy: brute force when asked or small, filtered, or plain HNSW; the
// best need with their exact distances (re-scored when compressed).
func (c *Collection) nearest(q []float32, need, ef int, o SearchOptions, accept func(uint32) bool) []cand {
	var hits []cand
	switch {
	case o.Exact || c.g.count <= c.db.opts.ExactThreshold:
		hits = c.g.exact(q, need, nil, accept)
	case o.Filter != nil:
		hits = c.filteredSearch(q, need, ef, o.Filter, accept)
	default:
		hits = c.g.search(q, need, ef, accept)
	}
	return c.rescoreLocked(q, hits, need)
}

// filteredSearch keeps recall under selective filters: it estimates how
// many items match (exactly from keyword postings when the filter pins a
// keyword, else by sampling), brute-forces the matching set when it is small,
// and otherwise widens the HNSW beam by 1/selectivity (capped).
func (c *Collection) filteredSearch(q []float32, k, ef int, f *Filter, accept func(uint32) bool) []cand {
	n := c.g.count
	limit := max(c.db.opts.ExactThreshold, n/50)
	if set, ok := c.candidates(f); ok {
		if len(set) <= limit {
			return c.g.exact(q, k, set, accept)
		}
		sel := float64(len(set)) / float64(n)
		return c.g.search(q, k, widen(ef, sel), accept)
	}
	sel := c.sampleSelectivity(f)
	if float64(n)*sel <= float64(limit) {
		return c.g.exact(q, k, nil, accept)
	}
	return c.g.search(q, k, widen(ef, sel), accept)
}

// widen scales the beam by 1/selectivity, at most 16-fold and never past
// MaxEf (nor below ef).
func widen(ef int, sel float64) int {
	w := ef * 16
	if sel > 0 && float64(ef)/sel < float64(w) {
		w = int(float64(ef) / sel)
	}
	return max(ef, min(w, MaxEf))
}

// candidates returns a superset of the matching slots when the filter
// constrains a keyword field (equality/IN, or an AND containing one).
func (c *Collection) candidates(f *Filter) ([]uint32, bool) {
	switch f.op {
	case opEq:
		var out []uint32
		seen := map[uint32]bool{}
		for _, v := range f.vals {
			for s := range c.postings[postingKey(f.field, v.s)] {
				if !seen[s] {
					seen[s] = true
					out = append(out, s)
				}
			}
			if v.isNum {
				return nil, false // numbers outside arrays are not in postings
			}
		}
		return out, true
	case opAnd:
		var best []uint32
		found := false
		for _, k := range f.kids {
			if set, ok := c.candidates(k); ok && (!found || len(set) < len(best)) {
				best, found = set, true
			}
		}
		return best, found
	case opOr:
		var out []uint32
		seen := map[uint32]bool{}
		for _, k := range f.kids {
			set, ok := c.candidates(k)
			if !ok {
				return nil, false
			}
			for _, s := range set {
				if !seen[s] {
					seen[s] = true
					out = append(out, s)
				}
			}
		}
		return out, true
	}
	return nil, false
}

// sampleSelectivity evaluates the filter on up to 512 random live slots.
func (c *Collection) sampleSelectivity(f *Filter) float64 {
	n := len(c.ids)
	if n == 0 {
		return 1
	}
	rng := rand.New(rand.NewSource(int64(n)))
	tried, hit := 0, 0
	for i := 0; i < 2048 && tried < 512; i++ {
		s := uint32(rng.Intn(n))
		if c.ids[s] == "" {
			continue
		}
		tried++
		if f.match(&c.attrs[s]) {
			hit++
		}
	}
	if tried == 0 {
		return 1
	}
	return float64(hit) / float64(tried)
}
