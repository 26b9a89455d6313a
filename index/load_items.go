package index

import (
	"bytes"
	"encoding/json"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Loading the stored records at Open, in three passes so that a million items
// load on every core: (1) walk the records once, keeping views into bbolt's
// pages (valid for the load transaction), and size every table exactly (a
// slab grown by doubling would briefly hold twice a million vectors); (2) on
// Options.BuildWorkers goroutines, decode each vector into its slot (encoding
// it when compressed) and parse its metadata; (3) record ids and metadata in
// the maps, on one goroutine.

// makeTables gives c empty per-slot tables for slots slots and id maps sized for items items.
func (c *Collection) makeTables(slots, items int) {
	c.ids = make([]string, slots)
	c.hashes = make([]string, slots)
	c.metas = make([]json.RawMessage, slots)
	c.attrs = make([]attrs, slots)
	c.byID = make(map[string]uint32, items)
	c.postings, c.fields = map[string]map[uint32]struct{}{}, nil
}

// loadRec is one stored record during Open.
type loadRec struct {
	id   []byte
	r    recordView
	meta json.RawMessage
	a    attrs
}

// loadItems fills c from the records of items and returns which slots are live,
// and whether SQ8 ranges were trained from them (to be stored). Inside the load
// transaction, before c is shared.
func (c *Collection) loadItems(b, items *bolt.Bucket) (live []bool, trained bool, err error) {
	db, g, dims := c.db, c.g, c.cfg.Dims
	// The snapshot's slot count sizes the tables without walking every page (Stats does).
	n, snapN := 0, 0
	if h, ok := parseSnapHead(b.Get(keyGraph)); ok {
		if snapN = snapshotSlots(b, h); snapN > 1<<30 {
			snapN = 0
		}
		n = snapN
	}
	if n <= 0 {
		n = items.Stats().KeyN
	}
	if db.opts.Compression == CompressionSQ8 {
		g.sq = loadSQ8(b, dims)
		if g.sq == nil && n >= SQ8TrainAt {
			g.sq, trained = trainStored(items, dims), true
		}
	}

	recs := make([]loadRec, 0, n)
	err = items.ForEach(func(k, v []byte) error {
		r, err := decodeRecordView(v)
		if err != nil || r.dims() != dims || r.slot > 1<<30 {
			db.log.Error("skipping corrupt record", "collection", c.name, "id", string(k))
			return nil
		}
		if int(r.slot) < len(live) && live[r.slot] {
			db.log.Error("skipping record with a duplicate slot", "collection", c.name, "id", string(k))
			return nil
		}
		if int(r.slot) >= len(live) {
			live = append(live, make([]bool, int(r.slot)+1-len(live))...)
		}
		live[r.slot] = true
		recs = append(recs, loadRec{id: k, r: r})
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if snapN > len(live) { // slots freed at the end after the snapshot still count
		live = append(live, make([]bool, snapN-len(live))...)
	}
	g.reserve(len(live))
	g.grow(len(live))

	workers := max(1, min(db.opts.BuildWorkers, len(recs)/1024))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]float32, dims)
			for i := w; i < len(recs); i += workers {
				rec := &recs[i]
				if g.sq != nil {
					rec.r.vectorInto(buf)
					g.sq.encode(g.code(rec.r.slot), buf)
				} else {
					rec.r.vectorInto(g.vec(rec.r.slot))
				}
				if len(rec.r.meta) > 0 {
					rec.meta = json.RawMessage(bytes.Clone(rec.r.meta))
					rec.a = parseAttrs(rec.meta)
				}
			}
		}()
	}
	wg.Wait()

	c.makeTables(len(live), len(recs))
	for i := range recs {
		rec := &recs[i]
		c.setSlot(rec.r.slot, string(rec.id), string(rec.r.hash), rec.meta, rec.a)
	}
	return live, trained, nil
}
