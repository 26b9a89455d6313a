package index

import (
	"fmt"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// Compression of the vectors a collection holds in memory.
//
// With CompressionSQ8 a collection keeps float32 vectors in memory until it
// holds SQ8TrainAt items, then learns per-dimension ranges from them
// (sq8Trainer), stores the ranges in its bucket (key "sq8"), and from then on
// holds one byte per dimension. The float vectors stay in bbolt, the source of
// truth, where searches re-score their best candidates (rescoreDepth) so that
// scores and order come from the exact vectors. Opening a collection with
// stored ranges encodes the stored vectors with them; the ranges are never
// retrained, and components of later items outside them are clamped (this
// only blurs the graph's traversal, never a returned score).
//
// With CompressionNone the float vectors stay in memory (4 bytes per
// dimension) and stored ranges are ignored.
const (
	CompressionSQ8  = "sq8"
	CompressionNone = "none"
	// DefaultCompression: SQ8 is a quarter of the memory and, on 100k
	// clustered 1280-d vectors, more queries per second at the same recall
	// (README, Performance).
	DefaultCompression = CompressionSQ8
)

// SQ8TrainAt is the item count at which a collection learns its SQ8 ranges:
// enough items to see each dimension's spread, and below it the float
// vectors cost little (and searches are exact below Options.ExactThreshold).
const SQ8TrainAt = 1000

var keySQ8 = []byte("sq8")

func validCompression(s string) error {
	if s != CompressionSQ8 && s != CompressionNone {
		return fmt.Errorf("index: unknown compression %q (want %q or %q)", s, CompressionSQ8, CompressionNone)
	}
	return nil
}

// compressed reports whether the collection holds SQ8 codes. Under RLock.
func (c *Collection) compressed() bool { return c.g.sq != nil }

// maybeCompress trains the SQ8 ranges and compresses the vectors once the
// collection is large enough. A failure to store the ranges leaves the
// collection in float storage (the next write tries again). Under wmu.
func (c *Collection) maybeCompress() {
	c.mu.RLock()
	// Not while the re-ranking state loads: compressing re-measures its lists (the next write
	// after the load compresses).
	want := c.db.opts.Compression == CompressionSQ8 && c.g.sq == nil && c.g.count >= SQ8TrainAt && !c.closed && c.rrReady
	var q *sq8
	if want {
		t := newSQ8Trainer(c.cfg.Dims)
		for i, l := range c.g.levels {
			if l >= 0 {
				t.add(c.g.vec(uint32(i)))
			}
		}
		q = t.quantizer()
	}
	c.mu.RUnlock()
	if !want {
		return
	}
	err := c.inBucket(func(b *bolt.Bucket) error {
		return b.Put(keySQ8, q.marshal())
	})
	if err != nil {
		c.db.log.Warn("storing SQ8 ranges failed, vectors stay float32", "collection", c.name, "err", err)
		return
	}
	c.mu.Lock()
	c.g.compress(q)
	if !c.rrSkip {
		c.rrRedistance()
	}
	c.mu.Unlock()
	c.db.log.Info("vectors compressed to SQ8", "collection", c.name, "items", c.g.count)
}

// storedVector copies a slot's float vector from bbolt into dst (false when
// the record is missing or corrupt). Under mu.RLock, inside tx.
func (c *Collection) storedVector(items *bolt.Bucket, slot uint32, dst []float32) bool {
	if int(slot) >= len(c.ids) || c.ids[slot] == "" {
		return false
	}
	id := c.ids[slot]
	// bbolt only reads the key: no copy of the id is needed.
	r, err := decodeRecordView(items.Get(unsafe.Slice(unsafe.StringData(id), len(id))))
	if err != nil || r.dims() != len(dst) {
		return false
	}
	r.vectorInto(dst)
	return true
}

// slotVector returns a copy of a slot's float vector: from memory, or from
// bbolt when compressed. Under mu.RLock.
func (c *Collection) slotVector(slot uint32) ([]float32, error) {
	if c.g.sq == nil {
		return append([]float32(nil), c.g.vec(slot)...), nil
	}
	out := make([]float32, c.cfg.Dims)
	found := false
	if !c.withItems(func(items *bolt.Bucket) { found = c.storedVector(items, slot, out) }) || !found {
		return nil, fmt.Errorf("%w: vector of item %q in %q is unreadable", ErrStorage, c.ids[slot], c.name)
	}
	return out, nil
}

// sameVectorLocked reports whether slot s holds the unit vector v (up to
// rounding): compared in memory, or when compressed with the float vector in
// bbolt (the codes are approximate). Under mu.RLock.
func (c *Collection) sameVectorLocked(s uint32, v []float32) bool {
	if c.g.sq == nil {
		return dot(c.g.vec(s), v) >= sameVector
	}
	u, err := c.slotVector(s)
	return err == nil && dot(u, v) >= sameVector
}

// rescoreLocked gives compressed search results their exact scores and order
// from the float vectors in bbolt and keeps the best k. Should bbolt fail to
// read, the approximate order stands (scores within ~0.005). Under mu.RLock.
func (c *Collection) rescoreLocked(q []float32, hits []cand, k int) []cand {
	if c.g.sq == nil || len(hits) == 0 {
		return hits
	}
	ok := c.withItems(func(items *bolt.Bucket) {
		hits = rescore(q, hits, k, func(slot uint32, dst []float32) bool { return c.storedVector(items, slot, dst) })
	})
	if !ok {
		hits = hits[:min(k, len(hits))]
	}
	return hits
}

// exactScoresLocked gives results ranked otherwise (re-ranking) their exact
// distances, keeping their order. Under mu.RLock.
func (c *Collection) exactScoresLocked(q []float32, hits []cand) []cand {
	if c.g.sq == nil || len(hits) == 0 {
		return hits
	}
	c.withItems(func(items *bolt.Bucket) {
		buf := make([]float32, len(q))
		for i := range hits {
			if c.storedVector(items, hits[i].id, buf) {
				hits[i].d = 1 - dot(q, buf)
			}
		}
	})
	return hits
}

// withItems runs fn with the items bucket in a read transaction; false when
// it could not (the collection was dropped, bbolt failed).
func (c *Collection) withItems(fn func(items *bolt.Bucket)) bool {
	ok := false
	err := c.db.bolt.View(func(tx *bolt.Tx) error {
		if b := c.bucket(tx); b != nil {
			fn(b.Bucket(bucketItems))
			ok = true
		}
		return nil
	})
	if err != nil {
		c.db.log.Warn("re-scoring from bbolt failed: approximate scores", "collection", c.name, "err", err)
	}
	return ok && err == nil
}

// loadSQ8 returns the collection's stored ranges, nil when it has none or
// they do not parse (then they are retrained).
func loadSQ8(b *bolt.Bucket, dims int) *sq8 {
	v := b.Get(keySQ8)
	if v == nil {
		return nil
	}
	q, err := unmarshalSQ8(v, dims)
	if err != nil {
		return nil
	}
	return q
}

// trainStored learns SQ8 ranges from every stored vector (one pass over the
// records, before they are loaded, so that a large float collection is never
// held as floats and codes at once).
func trainStored(items *bolt.Bucket, dims int) *sq8 {
	t := newSQ8Trainer(dims)
	buf := make([]float32, dims)
	_ = items.ForEach(func(_, v []byte) error {
		if r, err := decodeRecordView(v); err == nil && r.dims() == dims {
			r.vectorInto(buf)
			t.add(buf)
		}
		return nil
	})
	return t.quantizer()
}

// storeSQ8 persists ranges trained at Open; on failure the next Open trains
// them again.
func (c *Collection) storeSQ8() {
	err := c.db.bolt.Update(func(tx *bolt.Tx) error {
		b := c.bucket(tx)
		if b == nil {
			return nil
		}
		return b.Put(keySQ8, c.g.sq.marshal())
	})
	if err != nil {
		c.db.log.Warn("storing SQ8 ranges failed", "collection", c.name, "err", err)
	}
}

// rrRedistance gives the re-ranking lists the distances the codes give (rrDist
// from now on) and rebuilds the rows from them: the state compares distances it
// computed at different times, which must agree to the bit. Under mu.Lock.
func (c *Collection) rrRedistance() {
	for i, l := range c.g.levels {
		s := uint32(i)
		if l < 0 || !c.rr.Has(s) {
			continue
		}
		old := c.rr.List(s)
		cs := make([]cand, len(old))
		for j, n := range old {
			cs[j] = cand{n.D, n.ID}
		}
		c.rr.SetList(s, c.rrList(s, cs))
	}
	c.rr.Rebuild(c.rrDist, c.db.opts.BuildWorkers)
}
