package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand"
	"slices"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// Item is one indexed product image. Vector is normalised on Upsert.
type Item struct {
	ID          string          `json:"id"`
	Vector      []float32       `json:"vector,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	Thumbnail   []byte          `json:"-"`
	ContentHash string          `json:"content_hash,omitempty"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// Limits on items.
const (
	MaxIDLen       = 256
	MaxMetadataLen = 64 << 10
	MaxThumbLen    = 4 << 20
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
	g        *graph
	ids      []string          // slot -> id ("" = free)
	byID     map[string]uint32 // id -> slot
	hashes   []string
	metas    []json.RawMessage
	attrs    []attrs
	postings map[string]map[uint32]struct{} // field NUL value -> slots
	free     []uint32
	seq      uint64 // last persisted write sequence number
	snapSeq  uint64 // seq of the stored snapshot

	loadedFrom string // "snapshot", "rebuild" or "empty", for logs and tests
}

func newCollection(db *DB, name string, cfg CollectionConfig) *Collection {
	return &Collection{
		db: db, name: name, cfg: cfg,
		g:          newGraph(cfg.Dims, cfg.M, cfg.EfConstruction, db.opts.Ml, time.Now().UnixNano()),
		byID:       map[string]uint32{},
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

// Fingerprint names the model and preprocessing of the stored vectors.
func (c *Collection) Fingerprint() string { return c.cfg.Fingerprint }

// Name is the collection's name.
func (c *Collection) Name() string { return c.name }

// Info describes the collection. DiskBytes is the bbolt pages its buckets use.
func (c *Collection) Info() CollectionInfo {
	c.mu.RLock()
	info := CollectionInfo{
		Name: c.name, Fingerprint: c.cfg.Fingerprint, Dims: c.cfg.Dims,
		Count: c.g.count, Levels: c.g.maxLevel + 1,
		M: c.cfg.M, EfConstruction: c.cfg.EfConstruction, EfSearch: c.cfg.EfSearch,
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

type prepared struct {
	id    string
	vec   []float32
	meta  json.RawMessage
	thumb []byte
	hash  string
	at    time.Time
	slot  uint32
	isNew bool
}

func (c *Collection) prepare(it Item) (prepared, error) {
	p := prepared{id: it.ID, hash: it.ContentHash, at: it.UpdatedAt}
	fail := func(format string, args ...any) (prepared, error) {
		return p, fmt.Errorf("%w: item %q: %s", ErrInvalidItem, it.ID, fmt.Sprintf(format, args...))
	}
	if err := validID(it.ID); err != nil {
		return p, fmt.Errorf("%w: %v", ErrInvalidItem, err)
	}
	if len(it.Vector) != c.cfg.Dims {
		return p, fmt.Errorf("%w: %w: item %q: vector has %d dims, collection %q has %d",
			ErrInvalidItem, ErrDimMismatch, it.ID, len(it.Vector), c.name, c.cfg.Dims)
	}
	v, ok := normalize(it.Vector)
	if !ok {
		return fail("vector has a non-finite component or zero norm")
	}
	p.vec = v
	if len(it.Metadata) > MaxMetadataLen {
		return fail("metadata is %d bytes, max %d", len(it.Metadata), MaxMetadataLen)
	}
	if len(bytes.TrimSpace(it.Metadata)) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(it.Metadata, &obj); err != nil || obj == nil {
			return fail("metadata must be a JSON object")
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, it.Metadata); err != nil {
			return fail("metadata: %v", err)
		}
		p.meta = buf.Bytes()
	}
	if len(it.Thumbnail) > MaxThumbLen {
		return fail("thumbnail is %d bytes, max %d", len(it.Thumbnail), MaxThumbLen)
	}
	p.thumb = slices.Clone(it.Thumbnail)
	if len(it.ContentHash) > 256 {
		return fail("content hash longer than 256 bytes")
	}
	if p.at.IsZero() {
		p.at = time.Now()
	}
	p.at = p.at.UTC()
	return p, nil
}

// ---- writes ----

func (c *Collection) writable() error {
	if c.db.readOnly {
		return fmt.Errorf("%w: collection %q", ErrReadOnly, c.name)
	}
	return nil
}

// Upsert inserts or replaces items (keyed by ID). It validates every item
// first (ErrInvalidItem, nothing written), commits all of them in one bbolt
// transaction (durable when Upsert returns) and then links them into the
// graph. Within one call the last item with a given ID wins.
func (c *Collection) Upsert(ctx context.Context, items ...Item) error {
	if len(items) == 0 {
		return nil
	}
	if err := c.writable(); err != nil {
		return err
	}
	ps := make([]prepared, 0, len(items))
	pos := map[string]int{}
	for _, it := range items {
		p, err := c.prepare(it)
		if err != nil {
			return err
		}
		if i, ok := pos[p.id]; ok {
			ps[i] = p
			continue
		}
		pos[p.id] = len(ps)
		ps = append(ps, p)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.RLock()
	err := c.usable()
	free := len(c.free)
	next := uint32(len(c.ids))
	for i := range ps {
		if s, ok := c.byID[ps[i].id]; ok {
			ps[i].slot = s
		} else if free > 0 {
			free--
			ps[i].slot, ps[i].isNew = c.free[free], true
		} else {
			ps[i].slot, ps[i].isNew = next, true
			next++
		}
	}
	c.mu.RUnlock()
	if err != nil {
		return err
	}

	var seq uint64
	err = c.db.bolt.Update(func(tx *bolt.Tx) error {
		b := c.bucket(tx)
		if b == nil {
			return fmt.Errorf("%w: collection %q", ErrNotFound, c.name)
		}
		items, thumbs := b.Bucket(bucketItems), b.Bucket(bucketThumbs)
		for i := range ps {
			p := &ps[i]
			// bbolt keeps value slices until commit: one buffer per record.
			buf := appendRecord(nil, &record{slot: p.slot, updatedAt: p.at, hash: p.hash, meta: p.meta, vec: p.vec})
			if err := items.Put([]byte(p.id), buf); err != nil {
				return err
			}
			var err error
			if len(p.thumb) > 0 {
				err = thumbs.Put([]byte(p.id), p.thumb)
			} else {
				err = thumbs.Delete([]byte(p.id))
			}
			if err != nil {
				return err
			}
		}
		slots := make([]uint32, len(ps))
		for i := range ps {
			slots[i] = ps[i].slot
		}
		var err error
		seq, err = bumpSeq(b, slots)
		return err
	})
	if err != nil {
		return storageErr("upsert into "+c.name, err)
	}

	// Durable from here on: apply everything even if ctx is cancelled.
	c.mu.Lock()
	c.free = c.free[:free]
	c.mu.Unlock()
	for i := range ps {
		c.applyUpsert(&ps[i])
	}
	c.mu.Lock()
	c.seq = seq
	c.mu.Unlock()
	return nil
}

// bumpSeq advances the collection's write sequence number and logs which
// slots the write touched, so that Open can bring an older graph snapshot
// up to date by re-linking only those slots. A snapshot trims the log.
func bumpSeq(b *bolt.Bucket, slots []uint32) (uint64, error) {
	var seq uint64
	if v := b.Get(keySeq); len(v) == 8 {
		seq = binary.BigEndian.Uint64(v)
	}
	seq++
	if err := b.Put(keySeq, binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return 0, err
	}
	lb, err := b.CreateBucketIfNotExists(bucketLog)
	if err != nil {
		return 0, err
	}
	v := binary.AppendUvarint(nil, uint64(len(slots)))
	for _, s := range slots {
		v = binary.AppendUvarint(v, uint64(s))
	}
	return seq, lb.Put(binary.BigEndian.AppendUint64(nil, seq), v)
}

// readLog returns the slots touched by writes after seq `from`, or ok=false
// when the log does not cover every write from+1..to.
func readLog(b *bolt.Bucket, from, to uint64) (map[uint32]bool, bool) {
	touched := map[uint32]bool{}
	if from == to {
		return touched, true
	}
	lb := b.Bucket(bucketLog)
	if lb == nil || from > to {
		return nil, false
	}
	cur := lb.Cursor()
	want := from + 1
	for k, v := cur.Seek(binary.BigEndian.AppendUint64(nil, want)); k != nil; k, v = cur.Next() {
		if len(k) != 8 || binary.BigEndian.Uint64(k) != want {
			return nil, false
		}
		n, p := binary.Uvarint(v)
		if p <= 0 || n > uint64(len(v)) {
			return nil, false
		}
		for i := uint64(0); i < n; i++ {
			s, q := binary.Uvarint(v[p:])
			if q <= 0 || s > 1<<31 {
				return nil, false
			}
			p += q
			touched[uint32(s)] = true
		}
		want++
	}
	return touched, want == to+1
}

// trimLog deletes log entries up to and including seq.
func trimLog(b *bolt.Bucket, seq uint64) error {
	lb := b.Bucket(bucketLog)
	if lb == nil {
		return nil
	}
	var keys [][]byte
	cur := lb.Cursor()
	for k, _ := cur.First(); k != nil && len(k) == 8 && binary.BigEndian.Uint64(k) <= seq; k, _ = cur.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := lb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// applyUpsert updates memory for one persisted item. Under wmu.
func (c *Collection) applyUpsert(p *prepared) {
	if !p.isNew {
		c.unlink(p.slot)
	}
	a := parseAttrs(p.meta)
	c.mu.Lock()
	c.setSlot(p.slot, p.id, p.hash, p.meta, a)
	c.g.setVector(p.slot, p.vec)
	c.mu.Unlock()
	c.link(p.slot)
}

// link inserts a slot whose vector is in the slab into the graph. Under wmu.
func (c *Collection) link(slot uint32) {
	level := c.g.randomLevel()
	c.mu.RLock()
	plan := c.g.planInsert(slot, level)
	c.mu.RUnlock()
	c.mu.Lock()
	c.g.applyInsert(plan)
	c.mu.Unlock()
}

// unlink removes a slot from the graph, repairing its neighbours. Under wmu.
func (c *Collection) unlink(slot uint32) {
	c.mu.RLock()
	plan := c.g.planDelete(slot)
	c.mu.RUnlock()
	c.mu.Lock()
	c.g.applyDelete(plan)
	c.mu.Unlock()
}

// setSlot records id metadata for a slot. Under mu.Lock.
func (c *Collection) setSlot(slot uint32, id, hash string, meta json.RawMessage, a attrs) {
	for int(slot) >= len(c.ids) {
		c.ids = append(c.ids, "")
		c.hashes = append(c.hashes, "")
		c.metas = append(c.metas, nil)
		c.attrs = append(c.attrs, attrs{})
	}
	c.dropPostings(slot)
	c.ids[slot], c.hashes[slot], c.metas[slot], c.attrs[slot] = id, hash, meta, a
	c.byID[id] = slot
	for _, k := range a.keys() {
		set := c.postings[k]
		if set == nil {
			set = map[uint32]struct{}{}
			c.postings[k] = set
		}
		set[slot] = struct{}{}
	}
}

func (c *Collection) dropPostings(slot uint32) {
	if int(slot) >= len(c.attrs) {
		return
	}
	a := c.attrs[slot]
	for _, k := range a.keys() {
		if set := c.postings[k]; set != nil {
			delete(set, slot)
			if len(set) == 0 {
				delete(c.postings, k)
			}
		}
	}
}

// clearSlot frees a slot. Under mu.Lock.
func (c *Collection) clearSlot(slot uint32) {
	c.dropPostings(slot)
	delete(c.byID, c.ids[slot])
	c.ids[slot], c.hashes[slot], c.metas[slot], c.attrs[slot] = "", "", nil, attrs{}
	c.free = append(c.free, slot)
}

// Delete removes items by id; unknown ids are ignored. It returns how many
// existed. Durable when it returns.
func (c *Collection) Delete(ctx context.Context, ids ...string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	if err := c.writable(); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.RLock()
	err := c.usable()
	var slots []uint32
	var found []string
	seen := map[string]bool{}
	for _, id := range ids {
		if s, ok := c.byID[id]; ok && !seen[id] {
			seen[id] = true
			slots = append(slots, s)
			found = append(found, id)
		}
	}
	c.mu.RUnlock()
	if err != nil {
		return 0, err
	}
	if len(found) == 0 {
		return 0, nil
	}
	var seq uint64
	err = c.db.bolt.Update(func(tx *bolt.Tx) error {
		b := c.bucket(tx)
		if b == nil {
			return fmt.Errorf("%w: collection %q", ErrNotFound, c.name)
		}
		items, thumbs := b.Bucket(bucketItems), b.Bucket(bucketThumbs)
		for _, id := range found {
			if err := items.Delete([]byte(id)); err != nil {
				return err
			}
			if err := thumbs.Delete([]byte(id)); err != nil {
				return err
			}
		}
		var err error
		seq, err = bumpSeq(b, slots)
		return err
	})
	if err != nil {
		return 0, storageErr("delete from "+c.name, err)
	}
	for _, s := range slots {
		c.unlink(s)
		c.mu.Lock()
		c.clearSlot(s)
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.seq = seq
	c.mu.Unlock()
	return len(found), nil
}

// ---- reads ----

// Vector returns a copy of an item's (normalised) vector from memory, without touching bbolt: the
// cheap read for re-ranking and diversification.
func (c *Collection) Vector(id string) ([]float32, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if err := c.usable(); err != nil {
		return nil, err
	}
	slot, ok := c.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: item %q in %q", ErrNotFound, id, c.name)
	}
	return slices.Clone(c.g.vec(slot)), nil
}

// Get returns an item with its vector, metadata and thumbnail (copies).
func (c *Collection) Get(id string) (Item, error) {
	var it Item
	c.mu.RLock()
	err := c.usable()
	c.mu.RUnlock()
	if err != nil {
		return it, err
	}
	err = c.db.bolt.View(func(tx *bolt.Tx) error {
		b := c.bucket(tx)
		if b == nil {
			return fmt.Errorf("%w: collection %q", ErrNotFound, c.name)
		}
		v := b.Bucket(bucketItems).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: item %q in %q", ErrNotFound, id, c.name)
		}
		r, err := decodeRecord(v)
		if err != nil {
			return fmt.Errorf("%w: item %q: %w", ErrStorage, id, err)
		}
		it = Item{ID: id, Vector: r.vec, ContentHash: r.hash, UpdatedAt: r.updatedAt}
		if len(r.meta) > 0 {
			it.Metadata = r.meta
		}
		if t := b.Bucket(bucketThumbs).Get([]byte(id)); t != nil {
			it.Thumbnail = bytes.Clone(t)
		}
		return nil
	})
	return it, err
}

// Has reports whether id exists and its content hash, from memory.
func (c *Collection) Has(id string) (contentHash string, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.byID[id]
	if !ok {
		return "", false
	}
	return c.hashes[s], true
}

// Thumbnail returns the stored thumbnail bytes (nil, nil when the item has none).
func (c *Collection) Thumbnail(id string) ([]byte, error) {
	var out []byte
	err := c.db.bolt.View(func(tx *bolt.Tx) error {
		b := c.bucket(tx)
		if b == nil {
			return fmt.Errorf("%w: collection %q", ErrNotFound, c.name)
		}
		if b.Bucket(bucketItems).Get([]byte(id)) == nil {
			return fmt.Errorf("%w: item %q in %q", ErrNotFound, id, c.name)
		}
		out = bytes.Clone(b.Bucket(bucketThumbs).Get([]byte(id)))
		return nil
	})
	return out, err
}

// List returns up to limit items (without vectors and thumbnails) with ids
// greater than cursor, in id order; next is the cursor for the following
// page, "" at the end. limit <= 0 means 100; at most 10000.
func (c *Collection) List(cursor string, limit int) ([]Item, string, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 10000)
	var items []Item
	next := ""
	err := c.db.bolt.View(func(tx *bolt.Tx) error {
		b := c.bucket(tx)
		if b == nil {
			return fmt.Errorf("%w: collection %q", ErrNotFound, c.name)
		}
		cur := b.Bucket(bucketItems).Cursor()
		k, v := cur.Seek([]byte(cursor))
		if k != nil && cursor != "" && string(k) == cursor {
			k, v = cur.Next()
		}
		for ; k != nil; k, v = cur.Next() {
			if len(items) == limit {
				next = items[len(items)-1].ID
				break
			}
			r, err := decodeRecordView(v)
			if err != nil {
				return fmt.Errorf("%w: item %q: %w", ErrStorage, k, err)
			}
			it := Item{ID: string(k), ContentHash: string(r.hash), UpdatedAt: time.Unix(0, r.updatedAt).UTC()}
			if len(r.meta) > 0 {
				it.Metadata = bytes.Clone(r.meta)
			}
			items = append(items, it)
		}
		return nil
	})
	return items, next, err
}

// ---- search ----

// SearchOptions tune one search. K defaults to 10 (max 1000); Ef to the
// collection's EfSearch. Exact forces brute force. ExcludeIDs, MinScore and
// Offset are applied to the ranked results.
type SearchOptions struct {
	K          int
	Ef         int
	Filter     *Filter
	Exact      bool
	ExcludeIDs []string
	MinScore   float32
	Offset     int
}

// Result is one hit; Score is the cosine similarity.
type Result struct {
	ID       string          `json:"id"`
	Score    float32         `json:"score"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// MaxK bounds K+Offset.
const MaxK = 1000

// Search returns the K nearest items to query (normalised here).
func (c *Collection) Search(ctx context.Context, query []float32, o SearchOptions) ([]Result, error) {
	if len(query) != c.cfg.Dims {
		return nil, fmt.Errorf("%w: query has %d dims, collection %q has %d", ErrDimMismatch, len(query), c.name, c.cfg.Dims)
	}
	q, ok := normalize(query)
	if !ok {
		return nil, fmt.Errorf("%w: query vector has a non-finite component or zero norm", ErrInvalidItem)
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
	if err := c.usable(); err != nil {
		return nil, err
	}
	s, ok := c.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: item %q in %q", ErrNotFound, id, c.name)
	}
	return c.searchLocked(c.g.vec(s), o, s)
}

const noSlot = ^uint32(0)

// searchLocked picks the strategy. Under mu.RLock.
func (c *Collection) searchLocked(q []float32, o SearchOptions, self uint32) ([]Result, error) {
	k := o.K
	if k <= 0 {
		k = 10
	}
	if o.Offset < 0 {
		o.Offset = 0
	}
	need := k + o.Offset
	if need > MaxK {
		return nil, fmt.Errorf("%w: k+offset %d exceeds %d", ErrInvalidItem, need, MaxK)
	}
	ef := o.Ef
	if ef <= 0 {
		ef = c.cfg.EfSearch
	}
	ef = min(ef, 4096)
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
	if o.Filter != nil || excl != nil {
		f := o.Filter
		accept = func(s uint32) bool {
			if excl[s] {
				return false
			}
			return f == nil || f.match(&c.attrs[s])
		}
	}
	n := c.g.count
	var hits []cand
	switch {
	case o.Exact || n <= c.db.opts.ExactThreshold:
		hits = c.g.exact(q, need, nil, accept)
	case o.Filter != nil:
		hits = c.filteredSearch(q, need, ef, o.Filter, accept)
	default:
		hits = c.g.search(q, need, ef, accept)
	}
	out := make([]Result, 0, min(len(hits), k))
	for i, h := range hits {
		if i < o.Offset {
			continue
		}
		score := 1 - h.d
		if score < o.MinScore {
			break
		}
		// Metadata is copied: callers (HTTP handlers) may keep or modify it.
		out = append(out, Result{ID: c.ids[h.id], Score: score, Metadata: bytes.Clone(c.metas[h.id])})
	}
	return out, nil
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

func widen(ef int, sel float64) int {
	if sel <= 0 {
		return ef * 16
	}
	return min(max(ef, int(float64(ef)/sel)), ef*16, 4096)
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

// ---- load and snapshot ----

func loadCollection(db *DB, name string) (*Collection, error) {
	var c *Collection
	var snap []byte
	var live []bool
	var touched map[uint32]bool
	logOK := false
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCollections).Bucket([]byte(name))
		var cfg CollectionConfig
		if err := json.Unmarshal(b.Get(keyConfig), &cfg); err != nil || cfg.Dims <= 0 {
			return fmt.Errorf("%w: bad config", ErrStorage)
		}
		c = newCollection(db, name, db.fillConfig(cfg))
		if v := b.Get(keySeq); len(v) == 8 {
			c.seq = binary.BigEndian.Uint64(v)
		}
		items := b.Bucket(bucketItems)
		if items == nil {
			return fmt.Errorf("%w: missing items bucket", ErrStorage)
		}
		g := c.g
		g.reserve(items.Stats().KeyN)
		err := items.ForEach(func(k, v []byte) error {
			r, err := decodeRecordView(v)
			if err != nil || r.dims() != cfg.Dims || r.slot > 1<<30 {
				db.log.Error("skipping corrupt record", "collection", name, "id", string(k))
				return nil
			}
			if int(r.slot) < len(live) && live[r.slot] {
				db.log.Error("skipping record with a duplicate slot", "collection", name, "id", string(k))
				return nil
			}
			for int(r.slot) >= len(live) {
				live = append(live, false)
			}
			live[r.slot] = true
			g.grow(int(r.slot) + 1)
			r.vectorInto(g.vec(r.slot))
			meta := json.RawMessage(bytes.Clone(r.meta))
			if len(meta) == 0 {
				meta = nil
			}
			c.setSlot(r.slot, string(k), string(r.hash), meta, parseAttrs(meta))
			return nil
		})
		if err != nil {
			return err
		}
		snap = bytes.Clone(b.Get(keyGraph))
		if sseq, ok := snapshotSeq(snap); ok {
			touched, logOK = readLog(b, sseq, c.seq)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	g := c.g
	if len(snap) >= 16 { // slots freed at the end after the snapshot still count
		if sn := int(binary.LittleEndian.Uint32(snap[12:])); sn > len(live) && sn <= 1<<30 {
			live = append(live, make([]bool, sn-len(live))...)
		}
	}
	g.grow(len(live))
	for len(c.ids) < len(live) {
		c.ids = append(c.ids, "")
		c.hashes = append(c.hashes, "")
		c.metas = append(c.metas, nil)
		c.attrs = append(c.attrs, attrs{})
	}
	for i := len(live) - 1; i >= 0; i-- {
		if !live[i] {
			c.free = append(c.free, uint32(i))
		}
	}
	if len(live) == 0 {
		c.snapSeq = c.seq
		return c, nil
	}
	if snap != nil {
		err := errStaleSnap
		sseq, _ := snapshotSeq(snap)
		if logOK {
			err = decodeSnapshot(g, snap, sseq, live, touched)
		}
		if err == nil {
			c.snapSeq = sseq
			c.loadedFrom = "snapshot"
			if len(touched) > 0 {
				c.replay(live, touched)
				c.loadedFrom = "snapshot+replay"
			}
			return c, nil
		}
		db.log.Warn("graph snapshot unusable, rebuilding", "collection", name, "err", err)
	}
	// Rebuild: reset links and re-insert every stored vector.
	start := time.Now()
	clear(g.levels)
	for i := range g.levels {
		g.levels[i] = -1
		g.upper[i] = nil
	}
	clear(g.links0)
	g.maxLevel, g.count, g.entry = -1, 0, 0
	for i, ok := range live {
		if ok {
			g.insert(uint32(i))
		}
	}
	c.loadedFrom = "rebuild"
	db.log.Info("graph rebuilt", "collection", name, "count", g.count, "took", time.Since(start))
	return c, nil
}

// replay brings a snapshot graph up to date: every slot written after the
// snapshot is unlinked (repairing its neighbours) and, if live, re-inserted
// with its stored vector. Single-threaded, before the collection is shared.
func (c *Collection) replay(live []bool, touched map[uint32]bool) {
	start := time.Now()
	slots := make([]uint32, 0, len(touched))
	for s := range touched {
		slots = append(slots, s)
	}
	slices.Sort(slots)
	for _, s := range slots {
		if int(s) < len(c.g.levels) && c.g.levels[s] >= 0 {
			c.g.applyDelete(c.g.planDelete(s))
		}
	}
	for _, s := range slots {
		if int(s) < len(live) && live[s] {
			c.g.insert(s)
		}
	}
	c.db.log.Info("graph snapshot brought up to date", "collection", c.name, "slots", len(slots), "took", time.Since(start))
}

// snapshot writes the graph when it changed since the last snapshot. It
// holds wmu, so the graph in memory is exactly the state at c.seq.
func (c *Collection) snapshot() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.RLock()
	if c.closed || c.seq == c.snapSeq {
		c.mu.RUnlock()
		return nil
	}
	seq := c.seq
	b := encodeSnapshot(c.g, seq)
	c.mu.RUnlock()
	err := c.db.bolt.Update(func(tx *bolt.Tx) error {
		bk := c.bucket(tx)
		if bk == nil {
			return nil
		}
		if err := bk.Put(keyGraph, b); err != nil {
			return err
		}
		return trimLog(bk, seq)
	})
	if err != nil {
		return storageErr("snapshot "+c.name, err)
	}
	c.mu.Lock()
	c.snapSeq = seq
	c.mu.Unlock()
	return nil
}
