package index

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ---- load and snapshot ----

func loadCollection(db *DB, name string) (*Collection, error) {
	var c *Collection
	var snap, knn []byte
	var live []bool
	var touched map[uint32]bool
	logOK, trained := false, false
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
		n := items.Stats().KeyN
		if db.opts.Compression == CompressionSQ8 {
			g.sq = loadSQ8(b, cfg.Dims)
			if g.sq == nil && n >= SQ8TrainAt {
				g.sq, trained = trainStored(items, cfg.Dims), true
			}
		}
		g.reserve(n)
		buf := make([]float32, cfg.Dims)
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
			if g.sq != nil {
				r.vectorInto(buf)
				g.sq.encode(g.code(r.slot), buf)
			} else {
				r.vectorInto(g.vec(r.slot))
			}
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
		knn = bytes.Clone(b.Get(keyKNN))
		if sseq, ok := snapshotSeq(snap); ok {
			touched, logOK = readLog(b, sseq, c.seq)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if trained && !db.readOnly {
		c.storeSQ8()
	}
	g := c.g
	if len(snap) >= 16 { // slots freed at the end after the snapshot still count
		if sn := int(binary.LittleEndian.Uint32(snap[12:])); sn > len(live) && sn <= 1<<30 {
			live = append(live, make([]bool, sn-len(live))...)
		}
	}
	c.sizeSlots(live)
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
			c.loadRerank(knn, sseq, live, touched)
			return c, nil
		}
		db.log.Warn("graph snapshot unusable, rebuilding", "collection", name, "err", err)
	}
	c.rebuildGraph(live)
	c.loadRerank(nil, 0, live, nil)
	return c, nil
}

// sizeSlots makes every per-slot table cover live and lists the free slots.
func (c *Collection) sizeSlots(live []bool) {
	c.g.grow(len(live))
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
}

// rebuildGraph resets the links and re-inserts every stored vector. Single-threaded, before the
// collection is shared.
func (c *Collection) rebuildGraph(live []bool) {
	g, db, name := c.g, c.db, c.name
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
	kb := encodeLists(c.rr, seq, len(c.g.levels))
	c.mu.RUnlock()
	err := c.db.bolt.Update(func(tx *bolt.Tx) error {
		bk := c.bucket(tx)
		if bk == nil {
			return nil
		}
		if err := bk.Put(keyGraph, b); err != nil {
			return err
		}
		if err := bk.Put(keyKNN, kb); err != nil {
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
