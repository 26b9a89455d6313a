package index

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The catalog: every linked slot's in-memory state (its vector as held, SQ8 code or float32,
// id, content hash, metadata and parsed filter attributes), written with each graph snapshot so
// that Open reads one sequential stream instead of every record. At 1 M items the records are
// 6 GB of pages, each touched to load 1.3 GB of codes and a few bytes of metadata: the walk and
// the vector encoding took 70 of 108 s. The records stay the source of truth: the slots written
// since the snapshot (the write log names them with their ids) are loaded from their records,
// and a catalog that is missing, stale, corrupt or held in another storage sends Open back to
// the records.
//
// Stream, chunked like the graph's (sub-bucket "catalog.chunks", head under "catalog" with magic
// "LKC1", written in the transaction that makes the graph snapshot current):
//
//	seq u64 | slots u32 | kind u8 (0 float32, 1 SQ8) | dims u32 | crc32c(SQ8 ranges) u32 |
//	per linked slot, ascending: vector | id | hash | metadata | attributes
//
// where id, hash and metadata are uvarint-length-prefixed bytes and attributes are
// uvarint n, n × (field, value) strings, uvarint m, m × (field string, float64 bits u64).
var (
	keyCatalog    = []byte("catalog")
	bucketCatalog = []byte("catalog.chunks")
	catalogMagic  = []byte("LKC1")
	errNoCatalog  = errors.New("no usable catalog")
)

const (
	catalogFloat = 0
	catalogSQ8   = 1
)

// catalogKind is how g holds vectors, and the checksum of its SQ8 ranges (0 when float).
func catalogKind(g *graph) (byte, uint32) {
	if g.sq == nil {
		return catalogFloat, 0
	}
	return catalogSQ8, crc32.Checksum(g.sq.marshal(), crcTable)
}

// encodeCatalog streams the catalog at seq into w. Under wmu: nothing it reads changes.
func (c *Collection) encodeCatalog(seq uint64, w *snapWriter) {
	g := c.g
	kind, ranges := catalogKind(g)
	var b []byte
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(g.levels)))
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint32(b, uint32(g.dim))
	b = binary.LittleEndian.AppendUint32(b, ranges)
	w.bytes(b)
	for i, l := range g.levels {
		if l < 0 {
			continue
		}
		b = b[:0]
		if kind == catalogSQ8 {
			b = append(b, g.code(uint32(i))...)
		} else {
			for _, x := range g.vec(uint32(i)) {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
			}
		}
		b = appendLenBytes(b, c.ids[i])
		b = appendLenBytes(b, c.hashes[i])
		b = appendLenBytes(b, string(c.metas[i]))
		b = appendAttrs(b, &c.attrs[i])
		w.bytes(b)
	}
	w.emit()
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
	ch, ok := parseChunkedHead(b.Get(keyCatalog), catalogMagic)
	if !ok || ch.seq != gh.seq {
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
	n := len(snapLive)
	live := make([]bool, n)
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
	entries, err := c.decodeCatalog(openChunks(b, bucketCatalog, ch), ch, snapLive, touched, len(live))
	if err != nil {
		c.g = newGraph(c.cfg.Dims, c.cfg.M, c.cfg.EfConstruction, c.db.opts.Ml, time.Now().UnixNano())
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
		entries[s] = e
	}
	c.ids = make([]string, len(live))
	c.hashes = make([]string, len(live))
	c.metas = make([]json.RawMessage, len(live))
	c.attrs = make([]attrs, len(live))
	c.byID = make(map[string]uint32, len(live))
	for s, ok := range live {
		if ok {
			e := &entries[s]
			c.setSlot(uint32(s), e.id, e.hash, e.meta, e.a)
		}
	}
	return live, nil
}

// decodeCatalog reads the catalog stream into g (sized for slots) and returns each linked,
// untouched slot's entry; touched slots' entries are read past. It checks the stream against
// the snapshot's slots, g's storage and the checksum.
func (c *Collection) decodeCatalog(r *snapReader, h snapHead, snapLive []bool, touched map[uint32]bool, slots int) ([]catalogEntry, error) {
	g := c.g
	var hdr [21]byte
	if !r.read(hdr[:]) {
		return nil, errBadSnap
	}
	kind, ranges := catalogKind(g)
	if binary.LittleEndian.Uint64(hdr[0:]) != h.seq || int(binary.LittleEndian.Uint32(hdr[8:])) != len(snapLive) ||
		hdr[12] != kind || int(binary.LittleEndian.Uint32(hdr[13:])) != g.dim || binary.LittleEndian.Uint32(hdr[17:]) != ranges {
		return nil, errStaleSnap
	}
	g.reserve(slots)
	g.grow(slots)
	entries := make([]catalogEntry, slots)
	vecLen := g.dim
	if kind == catalogFloat {
		vecLen = 4 * g.dim
	}
	var scratch []byte
	for i, ok := range snapLive {
		if !ok {
			continue
		}
		raw, ok := r.view(vecLen, &scratch)
		if !ok {
			return nil, errBadSnap
		}
		keep := !touched[uint32(i)]
		if keep && kind == catalogSQ8 {
			copy(g.code(uint32(i)), raw)
		} else if keep {
			v := g.vec(uint32(i))
			for j := range v {
				v[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
			}
		}
		var e catalogEntry
		id, ok1 := r.lenView(MaxIDLen, &scratch)
		ok1 = ok1 && len(id) > 0
		e.id = string(id)
		hash, ok2 := r.lenView(1<<10, &scratch)
		e.hash = string(hash)
		meta, ok3 := r.lenView(MaxMetadataLen, &scratch)
		e.meta = cloneMeta(meta)
		a, ok4 := r.attrs(&scratch)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil, errBadSnap
		}
		if keep {
			e.a = a
			entries[i] = e
		}
	}
	if !r.finish(h) {
		return nil, errBadSnap
	}
	return entries, nil
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

// attrs reads what appendAttrs wrote, interning as parseAttrs does.
func (r *snapReader) attrs(scratch *[]byte) (attrs, bool) {
	var a attrs
	nkw, ok := r.uvarint()
	if !ok || nkw > MaxMetadataLen {
		return a, false
	}
	for range nkw {
		f, ok := r.lenView(MaxMetadataLen, scratch)
		if !ok {
			return a, false
		}
		field := intern(string(f))
		v, ok := r.lenView(MaxMetadataLen, scratch)
		if !ok {
			return a, false
		}
		a.kw = append(a.kw, kwAttr{field, intern(string(v))})
	}
	nnum, ok := r.uvarint()
	if !ok || nnum > MaxMetadataLen {
		return a, false
	}
	for range nnum {
		f, ok := r.lenView(MaxMetadataLen, scratch)
		if !ok {
			return a, false
		}
		field := intern(string(f))
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
