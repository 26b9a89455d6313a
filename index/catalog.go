package index

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The catalog: every linked slot's in-memory state (its vector as held, SQ8 code or float32,
// id, content hash, metadata and parsed filter attributes), kept beside the graph snapshot so
// that Open reads it instead of every record. At 1 M items the records are 6 GB of pages, each
// touched to load 1.3 GB of codes and a few bytes of metadata: that walk and the vector encoding
// took 70 of Open's 108 s. The records stay the source of truth: the slots written since the
// snapshot (the write log names them with their ids) are loaded from their records, and a
// catalog that is missing, stale, corrupt or held in another storage sends Open to the records.
//
// It is stored in blocks of catalogBlock slots (sub-bucket "catalog.blocks", key: block number
// u32 big endian), and a snapshot rewrites only the blocks holding a slot the write log names
// since the last one: a snapshot after a few writes writes a few blocks, not 1.4 GB. A block is
// rewritten in place, before the head, so a crash mid-snapshot can leave blocks newer than the
// head; that is safe because every slot that differs between them is in the log after the
// head's seq, and Open takes those from their records. A block:
//
//	kind u8 (0 float32, 1 SQ8) | dims u32 | crc32c(SQ8 ranges) u32 | first slot u32 | n u32 |
//	n × (slot - first u16 | vector | id | hash | metadata | attributes) | crc32c(block) u32
//
// id, hash and metadata are uvarint-length-prefixed bytes; attributes are uvarint n,
// n × (field, value) strings, uvarint m, m × (field string, float64 bits u64). The head, under
// key "catalog", written in the transaction that makes the graph snapshot current:
//
//	"LKC2" | seq u64 | kind u8 | dims u32 | crc32c(SQ8 ranges) u32 | blocks u32 | crc32c(head) u32
var (
	keyCatalog    = []byte("catalog")
	bucketCatalog = []byte("catalog.blocks")
	catalogMagic  = []byte("LKC2")
	errNoCatalog  = errors.New("no usable catalog")
)

// catalogBlock is the slots per block: 1.3 MB of codes at 1280 dimensions.
var catalogBlock = 1024 // a variable for the tests

const (
	catalogFloat = 0
	catalogSQ8   = 1
)

const catalogHeadLen = 4 + 8 + 1 + 4 + 4 + 4 + 4

// catalogHead describes the stored blocks: the state at seq, in kind, over blocks blocks.
type catalogHead struct {
	seq    uint64
	kind   byte
	dims   uint32
	ranges uint32
	blocks uint32
}

func (h catalogHead) marshal() []byte {
	b := append([]byte(nil), catalogMagic...)
	b = binary.LittleEndian.AppendUint64(b, h.seq)
	b = append(b, h.kind)
	b = binary.LittleEndian.AppendUint32(b, h.dims)
	b = binary.LittleEndian.AppendUint32(b, h.ranges)
	b = binary.LittleEndian.AppendUint32(b, h.blocks)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func parseCatalogHead(b []byte) (catalogHead, bool) {
	var h catalogHead
	if len(b) != catalogHeadLen || string(b[:4]) != string(catalogMagic) ||
		crc32.Checksum(b[:len(b)-4], crcTable) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return h, false
	}
	h.seq = binary.LittleEndian.Uint64(b[4:])
	h.kind = b[12]
	h.dims = binary.LittleEndian.Uint32(b[13:])
	h.ranges = binary.LittleEndian.Uint32(b[17:])
	h.blocks = binary.LittleEndian.Uint32(b[21:])
	return h, true
}

// catalogKind is how g holds vectors, and the checksum of its SQ8 ranges (0 when float).
func catalogKind(g *graph) (byte, uint32) {
	if g.sq == nil {
		return catalogFloat, 0
	}
	return catalogSQ8, crc32.Checksum(g.sq.marshal(), crcTable)
}

func blockKey(i int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(i)) }

// writeCatalog stores the blocks that changed since the stored head (all of them when there is
// none, or it is of another storage, or the log does not reach back to it), in transactions of
// about 8 MiB, and returns the head to store with the graph snapshot at seq and how many blocks
// it wrote. Under wmu: nothing it reads changes.
func (c *Collection) writeCatalog(seq uint64) (catalogHead, int, error) {
	g := c.g
	kind, ranges := catalogKind(g)
	head := catalogHead{seq: seq, kind: kind, dims: uint32(g.dim), ranges: ranges,
		blocks: uint32((len(g.levels) + catalogBlock - 1) / catalogBlock)}
	var dirty map[uint32]bool // nil: every block
	err := c.db.bolt.View(func(tx *bolt.Tx) error {
		bk := c.bucket(tx)
		if bk == nil {
			return ErrDropped
		}
		old, ok := parseCatalogHead(bk.Get(keyCatalog))
		if !ok || old.kind != kind || old.dims != head.dims || old.ranges != ranges || bk.Bucket(bucketCatalog) == nil {
			return nil
		}
		if touched, ok := readLog(bk, old.seq, seq); ok {
			dirty = map[uint32]bool{}
			for s := range touched {
				dirty[s/uint32(catalogBlock)] = true
			}
			for i := old.blocks; i < head.blocks; i++ {
				dirty[i] = true
			}
		}
		return nil
	})
	if err != nil {
		return head, 0, err
	}
	var batch [][2][]byte
	written := 0
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.db.bolt.Update(func(tx *bolt.Tx) error {
			bk := c.bucket(tx)
			if bk == nil {
				return ErrDropped
			}
			cb, err := bk.CreateBucketIfNotExists(bucketCatalog)
			if err != nil {
				return err
			}
			for _, kv := range batch {
				if err := cb.Put(kv[0], kv[1]); err != nil {
					return err
				}
			}
			return nil
		})
		batch, size = batch[:0], 0
		return err
	}
	for i := range int(head.blocks) {
		if dirty != nil && !dirty[uint32(i)] {
			continue
		}
		v := c.encodeBlock(i, kind, ranges)
		batch = append(batch, [2][]byte{blockKey(i), v})
		written++
		if size += len(v); size >= snapChunk {
			if err := flush(); err != nil {
				return head, written, err
			}
		}
	}
	return head, written, flush()
}

// encodeBlock encodes block i of the catalog.
func (c *Collection) encodeBlock(i int, kind byte, ranges uint32) []byte {
	g := c.g
	first := i * catalogBlock
	last := min(len(g.levels), first+catalogBlock)
	var b []byte
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint32(b, uint32(g.dim))
	b = binary.LittleEndian.AppendUint32(b, ranges)
	b = binary.LittleEndian.AppendUint32(b, uint32(first))
	n := 0
	for s := first; s < last; s++ {
		if g.levels[s] >= 0 {
			n++
		}
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	for s := first; s < last; s++ {
		if g.levels[s] < 0 {
			continue
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(s-first))
		if kind == catalogSQ8 {
			b = append(b, g.code(uint32(s))...)
		} else {
			for _, x := range g.vec(uint32(s)) {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
			}
		}
		b = appendLenBytes(b, c.ids[s])
		b = appendLenBytes(b, c.hashes[s])
		b = appendLenBytes(b, string(c.metas[s]))
		b = appendAttrs(b, &c.attrs[s])
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func appendLenBytes(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendAttrs(b []byte, a *attrs) []byte {
	b = binary.AppendUvarint(b, uint64(len(a.kw)))
	for _, e := range a.kw {
		b = appendLenBytes(appendLenBytes(b, e.field), e.value)
	}
	b = binary.AppendUvarint(b, uint64(len(a.num)))
	for _, e := range a.num {
		b = binary.LittleEndian.AppendUint64(appendLenBytes(b, e.field), math.Float64bits(e.n))
	}
	return b
}

// catalogEntry is one slot's state read from the catalog or from its record.
type catalogEntry struct {
	id, hash string
	meta     json.RawMessage
	a        attrs
}

// loadCatalog is Open's fast path: it fills c (graph vectors, ids, metadata, attributes) from the
// catalog and the records of the slots written since, and returns which slots are live. On
// errNoCatalog (nothing usable; c untouched) and on any other error (c's tables and graph are
// then reset) the caller walks the records. Inside the load transaction, before c is shared.
func (c *Collection) loadCatalog(b, items *bolt.Bucket) ([]bool, error) {
	gh, ok := parseSnapHead(b.Get(keyGraph))
	if !ok || gh.v1 != nil {
		return nil, errNoCatalog
	}
	ch, ok := parseCatalogHead(b.Get(keyCatalog))
	if !ok || ch.seq != gh.seq || int(ch.dims) != c.cfg.Dims {
		return nil, errNoCatalog
	}
	touched, touchedIDs, ok := readLogIDs(b, gh.seq, c.seq)
	if !ok {
		return nil, errNoCatalog
	}
	var sq *sq8
	if c.db.opts.Compression == CompressionSQ8 {
		sq = loadSQ8(b, c.cfg.Dims)
	}
	snapLive, err := snapshotLevels(b, gh)
	if err != nil {
		return nil, errNoCatalog
	}
	// The slots written since, from their records: each write logged its item's slot with its id.
	claims := map[uint32]catalogEntry{}
	claimVec := map[uint32]recordView{}
	for id := range touchedIDs {
		v := items.Get([]byte(id))
		if v == nil {
			continue // deleted since
		}
		r, err := decodeRecordView(v)
		if err != nil || r.dims() != c.cfg.Dims || !touched[r.slot] {
			return nil, errNoCatalog
		}
		if _, dup := claims[r.slot]; dup {
			return nil, errNoCatalog
		}
		claims[r.slot] = catalogEntry{id: id, hash: string(r.hash), meta: cloneMeta(r.meta), a: parseAttrs(r.meta)}
		claimVec[r.slot] = r
	}
	live := make([]bool, len(snapLive))
	for s := range claims {
		if int(s) >= len(live) {
			live = append(live, make([]bool, int(s)+1-len(live))...)
		}
		live[s] = true
	}
	for i, ok := range snapLive {
		live[i] = live[i] || (ok && !touched[uint32(i)])
	}
	if sq == nil && c.db.opts.Compression == CompressionSQ8 && countTrue(live) >= SQ8TrainAt {
		return nil, errNoCatalog // ranges to train from the records
	}
	g := c.g
	g.sq = sq
	if kind, ranges := catalogKind(g); kind != ch.kind || ranges != ch.ranges {
		g.sq = nil
		return nil, errNoCatalog
	}
	c.makeTables(len(live), len(live))
	entries := make([]catalogEntry, len(live))
	// The maps fill here, block by block, as the workers finish decoding them.
	err = c.decodeCatalog(b, ch, snapLive, touched, entries, func(first, last int) {
		for s := first; s < last; s++ {
			if live[s] && !touched[uint32(s)] {
				e := &entries[s]
				c.setSlot(uint32(s), e.id, e.hash, e.meta, e.a)
				entries[s] = catalogEntry{}
			}
		}
	})
	if err != nil {
		c.g = newGraph(c.cfg.Dims, c.cfg.M, c.cfg.EfConstruction, c.db.opts.Ml, time.Now().UnixNano())
		c.makeTables(0, 0)
		return nil, err
	}
	buf := make([]float32, c.cfg.Dims)
	for s, e := range claims {
		r := claimVec[s]
		if g.sq != nil {
			r.vectorInto(buf)
			g.sq.encode(g.code(s), buf)
		} else {
			r.vectorInto(g.vec(s))
		}
		c.setSlot(s, e.id, e.hash, e.meta, e.a)
	}
	return live, nil
}

// decodeCatalog reads the blocks the head h names into g (sized for len(entries) slots) and
// entries: each slot linked in the snapshot and not touched since (touched slots' entries are
// read past). Blocks decode on Options.BuildWorkers goroutines while this one hands each
// decoded block's slots, in order, to consume. Every block must be whole, of h's storage and
// cover exactly its share of those slots.
func (c *Collection) decodeCatalog(b *bolt.Bucket, h catalogHead, snapLive []bool, touched map[uint32]bool, entries []catalogEntry, consume func(first, last int)) error {
	cb := b.Bucket(bucketCatalog)
	if cb == nil || int(h.blocks) != (len(snapLive)+catalogBlock-1)/catalogBlock {
		return errNoCatalog
	}
	blocks := make([][]byte, h.blocks)
	cur := cb.Cursor()
	i := 0
	for k, v := cur.First(); k != nil && i < len(blocks); k, v = cur.Next() {
		if string(k) != string(blockKey(i)) {
			return errBadSnap
		}
		blocks[i] = v
		i++
	}
	if i != len(blocks) {
		return errBadSnap
	}
	g := c.g
	g.reserve(len(entries))
	g.grow(len(entries))
	workers := max(1, min(c.db.opts.BuildWorkers, runtime.GOMAXPROCS(0), len(blocks)))
	done := make([]chan error, len(blocks))
	for i := range done {
		done[i] = make(chan error, 1)
	}
	var failed atomic.Bool
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var scratch []byte
			for i := w; i < len(blocks); i += workers {
				var err error
				if !failed.Load() {
					err = c.decodeBlock(i, blocks[i], h, snapLive, touched, entries, &scratch)
				}
				if err != nil {
					failed.Store(true)
				}
				done[i] <- err
			}
		}()
	}
	var errs []error
	for i := range blocks {
		if err := <-done[i]; err != nil {
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			consume(i*catalogBlock, min(len(snapLive), (i+1)*catalogBlock))
		}
	}
	wg.Wait()
	if len(errs) == 0 && failed.Load() {
		errs = append(errs, errBadSnap)
	}
	return errors.Join(errs...)
}

// decodeBlock decodes block i (value v) into g and entries.
func (c *Collection) decodeBlock(i int, v []byte, h catalogHead, snapLive []bool, touched map[uint32]bool, entries []catalogEntry, scratch *[]byte) error {
	g := c.g
	if len(v) < 17+4 || crc32.Checksum(v[:len(v)-4], crcTable) != binary.LittleEndian.Uint32(v[len(v)-4:]) {
		return errBadSnap
	}
	first := i * catalogBlock
	if v[0] != h.kind || binary.LittleEndian.Uint32(v[1:]) != h.dims || binary.LittleEndian.Uint32(v[5:]) != h.ranges ||
		binary.LittleEndian.Uint32(v[9:]) != uint32(first) {
		return errStaleSnap
	}
	n := int(binary.LittleEndian.Uint32(v[13:]))
	vecLen := g.dim
	if h.kind == catalogFloat {
		vecLen = 4 * g.dim
	}
	r := &snapReader{cur: v[17 : len(v)-4], next: func() []byte { return nil }}
	last := min(len(snapLive), first+catalogBlock)
	// Every slot linked in the snapshot and untouched since has exactly one entry; a touched one
	// may have one or not (a crash mid-snapshot leaves blocks newer than the head).
	want, got := 0, 0
	for s := first; s < last; s++ {
		if snapLive[s] && !touched[uint32(s)] {
			want++
		}
	}
	prev := -1
	for range n {
		off, ok := r.view(2, scratch)
		if !ok {
			return errBadSnap
		}
		s := first + int(binary.LittleEndian.Uint16(off))
		keep := !touched[uint32(s)]
		if s <= prev || s >= first+catalogBlock || (keep && (s >= last || !snapLive[s])) {
			return errStaleSnap
		}
		if keep {
			got++
		}
		prev = s
		raw, ok := r.view(vecLen, scratch)
		if !ok {
			return errBadSnap
		}
		if keep && h.kind == catalogSQ8 {
			copy(g.code(uint32(s)), raw)
		} else if keep {
			vec := g.vec(uint32(s))
			for j := range vec {
				vec[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
			}
		}
		var e catalogEntry
		id, ok1 := r.lenView(MaxIDLen, scratch)
		ok1 = ok1 && len(id) > 0
		e.id = string(id)
		hash, ok2 := r.lenView(1<<10, scratch)
		e.hash = string(hash)
		meta, ok3 := r.lenView(MaxMetadataLen, scratch)
		e.meta = cloneMeta(meta)
		a, ok4 := r.attrs(scratch)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return errBadSnap
		}
		if keep {
			e.a = a
			entries[s] = e
		}
	}
	if len(r.cur) != 0 {
		return errBadSnap
	}
	if got != want {
		return errStaleSnap
	}
	return nil
}

// snapshotLevels reads which slots the graph snapshot has linked (its levels, at the stream's
// start).
func snapshotLevels(b *bolt.Bucket, h snapHead) ([]bool, error) {
	r := openSnapshot(b, h)
	var hdr [24]byte
	if !r.read(hdr[:]) || binary.LittleEndian.Uint64(hdr[:]) != h.seq {
		return nil, errBadSnap
	}
	n := binary.LittleEndian.Uint32(hdr[8:])
	if uint64(n) > h.length || n > 1<<30 {
		return nil, errBadSnap
	}
	lv := make([]byte, n)
	if !r.read(lv) {
		return nil, errBadSnap
	}
	out := make([]bool, n)
	for i, l := range lv {
		out[i] = int8(l) >= 0
	}
	return out, nil
}

// uvarint reads one unsigned varint.
func (r *snapReader) uvarint() (uint64, bool) {
	if len(r.cur) >= binary.MaxVarintLen64 {
		x, n := binary.Uvarint(r.cur)
		if n <= 0 {
			return 0, false
		}
		r.cur = r.cur[n:]
		return x, true
	}
	var x uint64
	for shift := uint(0); shift < 64; shift += 7 {
		var b [1]byte
		if !r.read(b[:]) {
			return 0, false
		}
		x |= uint64(b[0]&0x7f) << shift
		if b[0] < 0x80 {
			return x, true
		}
	}
	return 0, false
}

// view returns the next n bytes, valid until the next read: in place when the current chunk
// holds them (bbolt's page, valid in the load transaction), else copied into *scratch.
func (r *snapReader) view(n int, scratch *[]byte) ([]byte, bool) {
	if len(r.cur) >= n {
		v := r.cur[:n:n]
		r.cur = r.cur[n:]
		return v, true
	}
	if cap(*scratch) < n {
		*scratch = make([]byte, n)
	}
	b := (*scratch)[:n]
	return b, r.read(b)
}

// lenView reads a uvarint length of at most max, then views that many bytes.
func (r *snapReader) lenView(max int, scratch *[]byte) ([]byte, bool) {
	n, ok := r.uvarint()
	if !ok || n > uint64(max) {
		return nil, false
	}
	return r.view(int(n), scratch)
}

// interned reads a length-prefixed string, interned as parseAttrs interns attribute strings.
func (r *snapReader) interned(scratch *[]byte) (string, bool) {
	b, ok := r.lenView(MaxMetadataLen, scratch)
	return intern(string(b)), ok
}

// attrs reads what appendAttrs wrote, interning as parseAttrs does.
func (r *snapReader) attrs(scratch *[]byte) (attrs, bool) {
	var a attrs
	nkw, ok := r.uvarint()
	if !ok || nkw > MaxMetadataLen {
		return a, false
	}
	for range nkw {
		field, ok1 := r.interned(scratch)
		value, ok2 := r.interned(scratch)
		if !ok1 || !ok2 {
			return a, false
		}
		a.kw = append(a.kw, kwAttr{field, value})
	}
	nnum, ok := r.uvarint()
	if !ok || nnum > MaxMetadataLen {
		return a, false
	}
	for range nnum {
		field, ok := r.interned(scratch)
		if !ok {
			return a, false
		}
		bits, ok := r.view(8, scratch)
		if !ok {
			return a, false
		}
		a.num = append(a.num, numAttr{field, math.Float64frombits(binary.LittleEndian.Uint64(bits))})
	}
	return a, true
}

func cloneMeta(m []byte) json.RawMessage {
	if len(m) == 0 {
		return nil
	}
	return json.RawMessage(append([]byte(nil), m...))
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
