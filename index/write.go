package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lookalike/lookalike/rerank"
	bolt "go.etcd.io/bbolt"
)

type prepared struct {
	id     string
	vec    []float32
	meta   json.RawMessage
	thumb  []byte
	source []byte
	hash   string
	at     time.Time
	slot   uint32
	isNew  bool
	// moved: an existing item whose vector changes is written to a new slot (slot) and leaves
	// oldSlot only once the new one is linked, so concurrent searches find it throughout.
	moved   bool
	oldSlot uint32

	ifVersion uint64  // precondition from Item.IfVersion
	version   uint64  // after the write
	outcome   Outcome // what the write did
}

func (c *Collection) prepare(it Item) (prepared, error) {
	p := prepared{id: it.ID, hash: it.ContentHash, at: it.UpdatedAt, ifVersion: it.IfVersion}
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
		if f := NonFiniteNumber(p.meta); f != "" {
			return fail("metadata field %q holds a number beyond the float64 range", f)
		}
	}
	if len(it.Thumbnail) > MaxThumbLen {
		return fail("thumbnail is %d bytes, max %d", len(it.Thumbnail), MaxThumbLen)
	}
	p.thumb = slices.Clone(it.Thumbnail)
	if len(it.Source) > MaxSourceLen {
		return fail("source rendition is %d bytes, max %d", len(it.Source), MaxSourceLen)
	}
	p.source = slices.Clone(it.Source)
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

// Outcome says what a write did to one item.
type Outcome uint8

// Outcomes of a write.
const (
	Created   Outcome = iota + 1 // the id was new
	Replaced                     // the id existed and its record changed
	Unchanged                    // same content hash, metadata and thumbnail: nothing was written
)

func (o Outcome) String() string {
	switch o {
	case Created:
		return "created"
	case Replaced:
		return "replaced"
	case Unchanged:
		return "unchanged"
	}
	return "unknown"
}

// Written reports one item of a write: its version after the write and what happened.
type Written struct {
	ID      string
	Version uint64
	Outcome Outcome
}

// Upsert inserts or replaces items; see Put. It is Put without the per-item report.
func (c *Collection) Upsert(ctx context.Context, items ...Item) error {
	_, err := c.Put(ctx, items...)
	return err
}

// Put inserts or replaces items (keyed by ID). It validates every item first
// (ErrInvalidItem, nothing written), checks every IfVersion precondition
// (ErrVersionConflict, nothing written), commits all of them in one bbolt
// transaction (durable when Put returns) and then links them into the graph.
// Within one call the last item with a given ID wins; the report has one entry
// per input item, in order. An item whose non-empty content hash, metadata and
// thumbnail equal the stored ones is not rewritten (Unchanged, version kept).
func (c *Collection) Put(ctx context.Context, items ...Item) ([]Written, error) {
	return c.put(ctx, items)
}

// put is Put; each also runs first in the write's bbolt transaction (PutApplied records its log
// position there).
func (c *Collection) put(ctx context.Context, items []Item, also ...func(*bolt.Bucket) error) ([]Written, error) {
	if len(items) == 0 {
		return nil, nil
	}
	if err := c.writable(); err != nil {
		return nil, err
	}
	ps, pos, err := c.prepareAll(items)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.checkFrozen(ctx); err != nil {
		return nil, err
	}
	if err := c.putLocked(ps, also...); err != nil {
		return nil, err
	}
	out := make([]Written, len(items))
	for i, it := range items {
		p := &ps[pos[it.ID]]
		out[i] = Written{ID: p.id, Version: p.version, Outcome: p.outcome}
	}
	return out, nil
}

// Update applies fn to the stored item id under the collection's write lock and
// writes the result, so no other write can land between the read and the write:
// the read-modify-write features (merging metadata, tagging, metadata edits)
// never overwrite a change made since they read. fn gets a copy with vector,
// metadata and thumbnail; it may change anything but the ID. When fn returns an
// error nothing is written and Update returns it. ErrNotFound when id is absent.
func (c *Collection) Update(ctx context.Context, id string, fn func(*Item) error) (Written, error) {
	return c.update(ctx, id, fn)
}

// update is Update; each also runs first in the write's bbolt transaction (UpdateApplied records
// its log position there).
func (c *Collection) update(ctx context.Context, id string, fn func(*Item) error, also ...func(*bolt.Bucket) error) (Written, error) {
	if err := c.writable(); err != nil {
		return Written{}, err
	}
	if err := ctx.Err(); err != nil {
		return Written{}, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.checkFrozen(ctx); err != nil {
		return Written{}, err
	}
	it, err := c.Get(id)
	if err != nil {
		return Written{}, err
	}
	before := it.Version
	if err := fn(&it); err != nil {
		return Written{}, err
	}
	if it.ID != id {
		return Written{}, fmt.Errorf("%w: update of %q changed the id to %q", ErrInvalidItem, id, it.ID)
	}
	it.IfVersion = before
	if it.UpdatedAt.IsZero() {
		it.UpdatedAt = time.Now()
	}
	ps, _, err := c.prepareAll([]Item{it})
	if err != nil {
		return Written{}, err
	}
	if err := c.putLocked(ps, also...); err != nil {
		return Written{}, err
	}
	return Written{ID: id, Version: ps[0].version, Outcome: ps[0].outcome}, nil
}

// prepareAll validates items and folds repeated ids (the last wins); pos maps an id to its entry.
func (c *Collection) prepareAll(items []Item) ([]prepared, map[string]int, error) {
	ps := make([]prepared, 0, len(items))
	pos := make(map[string]int, len(items))
	for _, it := range items {
		p, err := c.prepare(it)
		if err != nil {
			return nil, nil, err
		}
		if i, ok := pos[p.id]; ok {
			ps[i] = p
			continue
		}
		pos[p.id] = len(ps)
		ps = append(ps, p)
	}
	return ps, pos, nil
}

// putLocked writes prepared items. Under wmu. Each also runs first in the same bbolt transaction
// (restoring from the trash removes the trash entry there, so the move is atomic).
func (c *Collection) putLocked(ps []prepared, also ...func(*bolt.Bucket) error) error {
	c.mu.RLock()
	err := c.usable()
	free := len(c.free)
	next := uint32(len(c.ids))
	for i := range ps {
		p := &ps[i]
		if s, ok := c.byID[p.id]; ok {
			p.slot = s
			if c.sameVectorLocked(s, p.vec) {
				continue
			}
			p.moved, p.oldSlot = true, s
		}
		if free > 0 {
			free--
			p.slot, p.isNew = c.free[free], true
		} else {
			p.slot, p.isNew = next, true
			next++
		}
	}
	c.mu.RUnlock()
	if err != nil {
		return err
	}
	var seq uint64
	err = c.inBucket(func(b *bolt.Bucket) error {
		for _, f := range also {
			if err := f(b); err != nil {
				return err
			}
		}
		var err error
		seq, err = c.writeRecords(b, ps)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrVersionConflict) || errors.Is(err, ErrNotFound) {
			return err
		}
		return storageErr("upsert into "+c.name, err)
	}

	// Durable from here on: apply everything even if ctx is cancelled.
	c.mu.Lock()
	c.free = c.free[:free]
	c.mu.Unlock()
	var unused []uint32 // new slots of moves that turned out unchanged
	var fresh []uint32  // new items, linked together
	for i := range ps {
		switch {
		case ps[i].outcome != Unchanged:
			if c.applyUpsert(&ps[i]) {
				fresh = append(fresh, ps[i].slot)
			}
		case ps[i].moved:
			unused = append(unused, ps[i].slot)
		}
	}
	c.linkAll(fresh)
	if len(unused) > 0 {
		c.mu.Lock()
		for _, s := range unused {
			if int(s) < len(c.ids) { // beyond: never materialised, the next append takes it
				c.free = append(c.free, s)
			}
		}
		c.mu.Unlock()
	}
	if seq != 0 {
		c.mu.Lock()
		c.seq = seq
		c.mu.Unlock()
	}
	return nil
}

// inBucket runs fn on the collection's bucket in one read-write transaction (ErrNotFound when the
// collection is gone).
func (c *Collection) inBucket(fn func(b *bolt.Bucket) error) error {
	return c.db.bolt.Update(func(tx *bolt.Tx) error {
		b := c.bucket(tx)
		if b == nil {
			return fmt.Errorf("%w: collection %q", ErrNotFound, c.name)
		}
		return fn(b)
	})
}

// writeRecords checks preconditions against the stored records and writes the
// changed ones inside one transaction. It returns the new write sequence number,
// 0 when nothing changed. Every written item gets that number as its version, so
// versions only grow, per item and across the collection.
func (c *Collection) writeRecords(b *bolt.Bucket, ps []prepared) (uint64, error) {
	items, thumbs := b.Bucket(bucketItems), b.Bucket(bucketThumbs)
	seq := currentSeq(b) + 1
	var slots []uint32
	var ids []string
	for i := range ps {
		p := &ps[i]
		old := items.Get([]byte(p.id))
		var stored recordView
		if old != nil {
			var err error
			if stored, err = decodeRecordView(old); err != nil {
				return 0, fmt.Errorf("%w: item %q: %w", ErrStorage, p.id, err)
			}
		}
		switch {
		case p.ifVersion != 0 && old == nil:
			return 0, fmt.Errorf("%w: item %q in %q no longer exists (expected version %d)", ErrVersionConflict, p.id, c.name, p.ifVersion)
		case p.ifVersion != 0 && stored.version != p.ifVersion:
			return 0, fmt.Errorf("%w: item %q in %q is at version %d, expected %d", ErrVersionConflict, p.id, c.name, stored.version, p.ifVersion)
		case old != nil && p.hash != "" && string(stored.hash) == p.hash && bytes.Equal(stored.meta, p.meta) &&
			bytes.Equal(thumbs.Get([]byte(p.id)), p.thumb) && bytes.Equal(getSource(b, p.id), p.source):
			p.outcome, p.version = Unchanged, stored.version
			continue
		case old != nil:
			p.outcome = Replaced
		default:
			p.outcome = Created
		}
		p.version = seq
		// bbolt keeps value slices until commit: one buffer per record.
		buf := appendRecord(nil, &record{slot: p.slot, updatedAt: p.at, version: seq, hash: p.hash, meta: p.meta, vec: p.vec})
		if err := items.Put([]byte(p.id), buf); err != nil {
			return 0, err
		}
		var err error
		if len(p.thumb) > 0 {
			err = thumbs.Put([]byte(p.id), p.thumb)
		} else {
			err = thumbs.Delete([]byte(p.id))
		}
		if err != nil {
			return 0, err
		}
		if err := putSource(b, p.id, p.source); err != nil {
			return 0, err
		}
		if err := recordChange(b, p.id, seq); err != nil {
			return 0, err
		}
		slots, ids = append(slots, p.slot), append(ids, p.id)
		if p.moved {
			// Open's replay unlinks it from an older snapshot.
			slots, ids = append(slots, p.oldSlot), append(ids, p.id)
		}
	}
	if len(slots) == 0 {
		return 0, nil
	}
	return bumpSeq(b, slots, ids)
}

func currentSeq(b *bolt.Bucket) uint64 {
	if v := b.Get(keySeq); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// bumpSeq advances the collection's write sequence number and logs which
// slots the write touched, so that Open can bring an older graph snapshot
// up to date by re-linking only those slots, and the id of the item written
// or deleted at each (ids[i] at slots[i]), so that it reads only their records
// beside the catalog (catalog.go). A snapshot trims the log. An entry is
//
//	uvarint n | n × uvarint slot | n × (uvarint length, id)
//
// (entries of older versions end after the slots).
func bumpSeq(b *bolt.Bucket, slots []uint32, ids []string) (uint64, error) {
	seq := currentSeq(b) + 1
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
	for _, id := range ids {
		v = appendLenBytes(v, id)
	}
	return seq, lb.Put(binary.BigEndian.AppendUint64(nil, seq), v)
}

// readLog returns the slots touched by writes after seq `from`, or ok=false
// when the log does not cover every write from+1..to.
func readLog(b *bolt.Bucket, from, to uint64) (map[uint32]bool, bool) {
	touched, _, ok := scanLog(b, from, to)
	return touched, ok
}

// readLogIDs is readLog with the ids written or deleted at those slots; ok=false also when an
// entry does not name them (an older version wrote it).
func readLogIDs(b *bolt.Bucket, from, to uint64) (map[uint32]bool, map[string]bool, bool) {
	touched, ids, ok := scanLog(b, from, to)
	return touched, ids, ok && ids != nil
}

// scanLog reads the entries from+1..to; ids is nil when one of them names no ids.
func scanLog(b *bolt.Bucket, from, to uint64) (touched map[uint32]bool, ids map[string]bool, ok bool) {
	touched, ids = map[uint32]bool{}, map[string]bool{}
	if from == to {
		return touched, ids, true
	}
	lb := b.Bucket(bucketLog)
	if lb == nil || from > to {
		return nil, nil, false
	}
	cur := lb.Cursor()
	want := from + 1
	for k, v := cur.Seek(binary.BigEndian.AppendUint64(nil, want)); k != nil; k, v = cur.Next() {
		if len(k) != 8 || binary.BigEndian.Uint64(k) != want {
			return nil, nil, false
		}
		n, p := binary.Uvarint(v)
		if p <= 0 || n > uint64(len(v)) {
			return nil, nil, false
		}
		for i := uint64(0); i < n; i++ {
			s, q := binary.Uvarint(v[p:])
			if q <= 0 || s > 1<<31 {
				return nil, nil, false
			}
			p += q
			touched[uint32(s)] = true
		}
		for i := uint64(0); i < n && ids != nil; i++ {
			l, q := binary.Uvarint(v[p:])
			if q <= 0 || l > uint64(len(v)-p-q) {
				ids = nil // an older entry, or one this version cannot read: the records decide
				break
			}
			p += q
			ids[string(v[p:p+int(l)])] = true
			p += int(l)
		}
		want++
	}
	return touched, ids, want == to+1
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

// sameVector is the cosine above which a write keeps the stored vector: a stored vector comes back
// re-normalised, hence the tolerance.
const sameVector = 1 - 1e-6

// applyUpsert updates memory for one persisted item. A new item is left for
// the caller to link (linkAll: a batch at once, in parallel); it reports
// whether p is one. Under wmu.
func (c *Collection) applyUpsert(p *prepared) bool {
	a := parseAttrs(p.meta)
	if p.moved {
		c.move(p, a)
		return false
	}
	// A write that keeps the vector (a metadata change: merge, tag, edit) keeps the item's links:
	// unlinking would hide it from concurrent searches (and duplicate checks) until it is linked
	// again. A new vector for an existing item is a move (putLocked gave it a new slot).
	c.mu.Lock()
	c.setSlot(p.slot, p.id, p.hash, p.meta, a)
	c.g.setVector(p.slot, p.vec)
	c.mu.Unlock()
	return p.isNew
}

// move gives an existing item its new vector without a moment where searches miss it: the new
// slot is linked while hidden, then the id switches to it in one step and the old slot, hidden
// in turn, is unlinked and freed. Under wmu.
func (c *Collection) move(p *prepared, a attrs) {
	c.mu.Lock()
	c.ensureSlot(p.slot)
	c.g.setVector(p.slot, p.vec)
	c.hidden[p.slot] = true
	c.mu.Unlock()
	c.link(p.slot)

	c.mu.Lock()
	c.releaseSlot(p.oldSlot)
	c.setSlot(p.slot, p.id, p.hash, p.meta, a)
	delete(c.hidden, p.slot)
	c.hidden[p.oldSlot] = true
	c.mu.Unlock()

	c.unlink(p.oldSlot)
	c.mu.Lock()
	delete(c.hidden, p.oldSlot)
	c.free = append(c.free, p.oldSlot)
	c.mu.Unlock()
}

// link inserts a slot whose vector is in the slab into the graph. Under wmu.
func (c *Collection) link(slot uint32) {
	c.linkAll([]uint32{slot})
}

// linkAll places slots whose vectors are in the slab and links them, on
// Options.BuildWorkers goroutines when there are many (graph.linkAll) under
// RLock, so searches keep running, then lists them for re-ranking one by one
// (a plan sees the items listed before it; searches that re-rank see only
// listed items: rrKnown). Under wmu.
func (c *Collection) linkAll(slots []uint32) {
	if len(slots) == 0 {
		return
	}
	c.mu.Lock()
	for _, s := range slots {
		c.g.place(s, c.g.randomLevel())
	}
	c.mu.Unlock()
	var beams [][]cand
	listed := !c.rrSkip && !c.rrDeferred(slots...)
	if listed {
		beams = make([][]cand, len(slots))
	}
	c.mu.RLock()
	// The writes are durable: link everything whatever the caller's context says.
	_ = c.g.linkAll(context.Background(), slots, c.db.opts.BuildWorkers, beams)
	c.mu.RUnlock()
	if listed {
		for i, s := range slots {
			c.mu.RLock()
			rp := c.rrPlanAdd(s, beams[i])
			c.mu.RUnlock()
			c.mu.Lock()
			c.rr.Apply(rp)
			c.mu.Unlock()
		}
	}
	// The write that brings the collection to SQ8TrainAt items compresses it.
	c.maybeCompress()
}

// unlink removes a slot from the graph, repairing its neighbours. Under wmu.
func (c *Collection) unlink(slot uint32) {
	c.mu.RLock()
	plan := c.g.planDelete(slot)
	var rp *rerank.Patch
	if !c.rrDeferred(slot) {
		rp = c.rrPlanRemove(slot)
	}
	c.mu.RUnlock()
	c.mu.Lock()
	c.g.applyDelete(plan)
	c.rr.Apply(rp)
	c.mu.Unlock()
}

// setSlot records id metadata for a slot. Under mu.Lock.
func (c *Collection) setSlot(slot uint32, id, hash string, meta json.RawMessage, a attrs) {
	c.ensureSlot(slot)
	c.dropPostings(slot)
	c.ids[slot], c.hashes[slot], c.metas[slot], c.attrs[slot] = id, hash, meta, a
	c.byID[id] = slot
	c.countFields(&a, 1)
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
	c.countFields(&a, -1)
	for _, k := range a.keys() {
		if set := c.postings[k]; set != nil {
			delete(set, slot)
			if len(set) == 0 {
				delete(c.postings, k)
			}
		}
	}
}

// ensureSlot makes the per-slot tables cover slot. Under mu.Lock.
func (c *Collection) ensureSlot(slot uint32) {
	for int(slot) >= len(c.ids) {
		c.ids = append(c.ids, "")
		c.hashes = append(c.hashes, "")
		c.metas = append(c.metas, nil)
		c.attrs = append(c.attrs, attrs{})
	}
}

// releaseSlot forgets a slot's item (id, metadata, postings) without freeing the slot. Under
// mu.Lock.
func (c *Collection) releaseSlot(slot uint32) {
	c.dropPostings(slot)
	if s, ok := c.byID[c.ids[slot]]; ok && s == slot {
		delete(c.byID, c.ids[slot])
	}
	c.ids[slot], c.hashes[slot], c.metas[slot], c.attrs[slot] = "", "", nil, attrs{}
}

// clearSlot frees a slot. Under mu.Lock.
func (c *Collection) clearSlot(slot uint32) {
	c.releaseSlot(slot)
	c.free = append(c.free, slot)
}

// Delete removes items by id; unknown ids are ignored. It returns how many
// existed. Durable when it returns.
func (c *Collection) Delete(ctx context.Context, ids ...string) (int, error) {
	found, err := c.remove(ctx, ids, nil)
	return len(found), err
}

// remove deletes the items of ids that exist and returns their ids. stash, when set, runs for
// each of them in the same transaction before the record is deleted (Trash copies it there).
func (c *Collection) remove(ctx context.Context, ids []string, stash func(b *bolt.Bucket, id string) error) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if err := c.writable(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.checkFrozen(ctx); err != nil {
		return nil, err
	}
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
		return nil, err
	}
	if len(found) == 0 {
		return nil, nil
	}
	var seq uint64
	err = c.inBucket(func(b *bolt.Bucket) error {
		items, thumbs := b.Bucket(bucketItems), b.Bucket(bucketThumbs)
		next := currentSeq(b) + 1 // the sequence bumpSeq gives this delete
		for _, id := range found {
			if err := recordChange(b, id, next); err != nil {
				return err
			}
			if stash != nil {
				if err := stash(b, id); err != nil {
					return err
				}
			}
			if err := items.Delete([]byte(id)); err != nil {
				return err
			}
			if err := thumbs.Delete([]byte(id)); err != nil {
				return err
			}
			if err := putSource(b, id, nil); err != nil {
				return err
			}
		}
		var err error
		seq, err = bumpSeq(b, slots, found)
		return err
	})
	if err != nil {
		return nil, storageErr("delete from "+c.name, err)
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
	return found, nil
}
