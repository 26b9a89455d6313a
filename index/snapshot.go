package index

import (
	"encoding/binary"
	"errors"
	"hash"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

// Graph snapshot. The graph is serialised as one stream:
//
//	seq u64 | slots u32 | m u32 | entry u32 | maxLevel i32 |
//	levels [slots]int8 | layer-0 links [slots*(2m+1)]u32 |
//	upper links of each slot with level > 0 [level*(m+1)]u32
//
// cut into chunks of snapChunk bytes, stored in the collection's bucket
// "graph.chunks" under gen u32 | index u32 (big endian). Each chunk is written
// and committed in a transaction of its own, so writing a snapshot needs one
// chunk of memory, not the graph twice over (an encoded copy plus bbolt's dirty
// pages, which live until commit): 145 MB of links at 1M items. The head under
// key "graph" makes a generation current:
//
//	"LKG2" | seq u64 | gen u32 | chunks u32 | length u64 | crc32c(stream) u32 | crc32c(head) u32
//
// It is written last, in the transaction that deletes every other
// generation's chunks (and trims the write log), so a crash mid-snapshot
// leaves the previous snapshot current. seq is the collection's write sequence
// number when the snapshot was taken; a snapshot whose seq differs from the
// stored one is stale. A head "LKG1" is the older format: the whole stream in
// that one value, followed by its crc32c.
var (
	snapMagicV1  = []byte("LKG1")
	snapMagic    = []byte("LKG2")
	bucketChunks = []byte("graph.chunks")
	crcTable     = crc32.MakeTable(crc32.Castagnoli)
	errBadSnap   = errors.New("corrupt graph snapshot")
	errStaleSnap = errors.New("stale graph snapshot")
)

// snapChunk is the size of one snapshot chunk (8 MiB).
var snapChunk = 8 << 20 // a variable for the tests

const snapHeadLen = 4 + 8 + 4 + 4 + 8 + 4 + 4

// snapHead is a parsed head.
type snapHead struct {
	seq    uint64
	gen    uint32
	chunks uint32
	length uint64
	sum    uint32
	v1     []byte // LKG1: the stream itself
}

// parseSnapHead reads the head value; ok=false when it is not one (then the
// snapshot is unusable).
func parseSnapHead(b []byte) (snapHead, bool) {
	if len(b) >= 4+8+4 && string(b[:4]) == string(snapMagicV1) {
		var h snapHead
		body := b[4 : len(b)-4]
		if crc32.Checksum(b[:len(b)-4], crcTable) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
			return h, false
		}
		h.seq, h.v1, h.length = binary.LittleEndian.Uint64(body), body, uint64(len(body))
		return h, true
	}
	var h snapHead
	if len(b) != snapHeadLen || string(b[:4]) != string(snapMagic) ||
		crc32.Checksum(b[:snapHeadLen-4], crcTable) != binary.LittleEndian.Uint32(b[snapHeadLen-4:]) {
		return h, false
	}
	h.seq = binary.LittleEndian.Uint64(b[4:])
	h.gen = binary.LittleEndian.Uint32(b[12:])
	h.chunks = binary.LittleEndian.Uint32(b[16:])
	h.length = binary.LittleEndian.Uint64(b[20:])
	h.sum = binary.LittleEndian.Uint32(b[28:])
	return h, true
}

func (h snapHead) marshal() []byte {
	b := make([]byte, 0, snapHeadLen)
	b = append(b, snapMagic...)
	b = binary.LittleEndian.AppendUint64(b, h.seq)
	b = binary.LittleEndian.AppendUint32(b, h.gen)
	b = binary.LittleEndian.AppendUint32(b, h.chunks)
	b = binary.LittleEndian.AppendUint64(b, h.length)
	b = binary.LittleEndian.AppendUint32(b, h.sum)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func chunkKey(gen, i uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, gen), i)
}

// snapWriter encodes the stream into chunk-sized buffers and hands each full
// one to flush.
type snapWriter struct {
	buf    []byte
	crc    hash.Hash32
	length uint64
	chunks uint32
	flush  func(i uint32, chunk []byte) error
	err    error
}

func (w *snapWriter) u32(x uint32) {
	w.buf = binary.LittleEndian.AppendUint32(w.buf, x)
	w.maybeFlush()
}

func (w *snapWriter) bytes(p []byte) {
	for len(p) > 0 {
		n := min(len(p), snapChunk-len(w.buf))
		w.buf = append(w.buf, p[:n]...)
		p = p[n:]
		w.maybeFlush()
	}
}

func (w *snapWriter) maybeFlush() {
	if len(w.buf) >= snapChunk {
		w.emit()
	}
}

func (w *snapWriter) emit() {
	if w.err != nil || len(w.buf) == 0 {
		w.buf = w.buf[:0]
		return
	}
	w.crc.Write(w.buf)
	w.length += uint64(len(w.buf))
	w.err = w.flush(w.chunks, w.buf)
	w.chunks++
	w.buf = w.buf[:0]
}

// encodeSnapshot streams g at seq into w. The graph must not change meanwhile
// (the caller holds the mutator lock).
func encodeSnapshot(g *graph, seq uint64, w *snapWriter) {
	n := len(g.levels)
	entry, top := g.entryPoint()
	var hdr []byte
	hdr = binary.LittleEndian.AppendUint64(hdr, seq)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(n))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(g.m))
	hdr = binary.LittleEndian.AppendUint32(hdr, entry)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(int32(top)))
	w.bytes(hdr)
	lv := make([]byte, n)
	for i, l := range g.levels {
		lv[i] = byte(l)
	}
	w.bytes(lv)
	for _, x := range g.links0 {
		w.u32(x)
	}
	for i, l := range g.levels {
		if l > 0 {
			for _, x := range g.upper[i] {
				w.u32(x)
			}
		}
	}
	w.emit()
}

// writeSnapshot stores a snapshot of g at seq chunk by chunk and the catalog's
// changed blocks (catalog.go), then both heads with the re-ranking lists (knn),
// which also drops the graph's older generations and trims the write log.
// Under wmu.
func (c *Collection) writeSnapshot(seq uint64, knn []byte) error {
	var gen uint32
	err := c.db.bolt.View(func(tx *bolt.Tx) error {
		if bk := c.bucket(tx); bk != nil {
			if h, ok := parseSnapHead(bk.Get(keyGraph)); ok {
				gen = h.gen + 1
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	graph, err := c.writeChunks(gen, func(w *snapWriter) { encodeSnapshot(c.g, seq, w) })
	if err != nil {
		return err
	}
	graph.seq = seq
	catalog, blocks, err := c.writeCatalog(seq)
	if err != nil {
		return err
	}
	c.db.log.Debug("catalog written", "collection", c.name, "blocks", blocks, "of", catalog.blocks)
	return c.db.bolt.Update(func(tx *bolt.Tx) error {
		bk := c.bucket(tx)
		if bk == nil {
			return nil
		}
		if err := bk.Put(keyGraph, graph.marshal()); err != nil {
			return err
		}
		if err := bk.Put(keyCatalog, catalog.marshal()); err != nil {
			return err
		}
		if err := bk.Put(keyKNN, knn); err != nil {
			return err
		}
		if err := dropOtherGenerations(bk.Bucket(bucketChunks), gen); err != nil {
			return err
		}
		if err := dropBlocksFrom(bk.Bucket(bucketCatalog), catalog.blocks); err != nil {
			return err
		}
		return trimLog(bk, seq)
	})
}

// writeChunks streams encode's output into the graph's chunks as generation gen, each chunk
// committed in a transaction of its own, and returns the head that names it (without seq).
func (c *Collection) writeChunks(gen uint32, encode func(*snapWriter)) (snapHead, error) {
	w := &snapWriter{crc: crc32.New(crcTable), buf: make([]byte, 0, snapChunk+64)}
	w.flush = func(i uint32, chunk []byte) error {
		return c.db.bolt.Update(func(tx *bolt.Tx) error {
			bk := c.bucket(tx)
			if bk == nil {
				return ErrDropped
			}
			cb, err := bk.CreateBucketIfNotExists(bucketChunks)
			if err != nil {
				return err
			}
			cb.FillPercent = 1 // appended in key order: full pages
			return cb.Put(chunkKey(gen, i), chunk)
		})
	}
	encode(w)
	return snapHead{gen: gen, chunks: w.chunks, length: w.length, sum: w.crc.Sum32()}, w.err
}

// dropBlocksFrom deletes the catalog blocks from number n on (cb nil: none).
func dropBlocksFrom(cb *bolt.Bucket, n uint32) error {
	return deleteKeys(cb, binary.BigEndian.AppendUint32(nil, n), func([]byte) bool { return true })
}

// dropOtherGenerations deletes every chunk of cb (nil: none) that is not of generation gen.
func dropOtherGenerations(cb *bolt.Bucket, gen uint32) error {
	return deleteKeys(cb, nil, func(k []byte) bool { return len(k) != 8 || binary.BigEndian.Uint32(k) != gen })
}

// deleteKeys deletes the keys of cb (nil: none) from seek on (nil: all) that drop names.
func deleteKeys(cb *bolt.Bucket, seek []byte, drop func(k []byte) bool) error {
	if cb == nil {
		return nil
	}
	var stale [][]byte
	cur := cb.Cursor()
	k, _ := cur.First()
	if seek != nil {
		k, _ = cur.Seek(seek)
	}
	for ; k != nil; k, _ = cur.Next() {
		if drop(k) {
			stale = append(stale, append([]byte(nil), k...))
		}
	}
	for _, k := range stale {
		if err := cb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// snapReader reads the stream from its chunks (bbolt values: valid only in
// the transaction that read them), checking its length and checksum at the end
// (without crc, the caller checks the checksum).
type snapReader struct {
	next   func() []byte // the next chunk, nil at the end
	cur    []byte
	crc    hash.Hash32
	length uint64
	bad    bool
}

// openSnapshot returns a reader over the snapshot stream the head names.
// Inside the transaction of b.
func openSnapshot(b *bolt.Bucket, h snapHead) *snapReader {
	r := &snapReader{crc: crc32.New(crcTable)}
	if h.v1 != nil {
		done := false
		r.next = func() []byte {
			if done {
				return nil
			}
			done = true
			return h.v1
		}
		return r
	}
	cb := b.Bucket(bucketChunks)
	if cb == nil {
		r.bad = true
		r.next = func() []byte { return nil }
		return r
	}
	cur := cb.Cursor()
	i := uint32(0)
	r.next = func() []byte {
		if i >= h.chunks {
			return nil
		}
		var k, v []byte
		if i == 0 {
			k, v = cur.Seek(chunkKey(h.gen, 0))
		} else {
			k, v = cur.Next()
		}
		if k == nil || string(k) != string(chunkKey(h.gen, i)) || len(v) == 0 {
			r.bad = true
			return nil
		}
		i++
		return v
	}
	return r
}

// read fills p from the stream; false when it ends first.
func (r *snapReader) read(p []byte) bool {
	for len(p) > 0 {
		if len(r.cur) == 0 {
			if r.cur = r.next(); r.cur == nil {
				return false
			}
			if r.crc != nil {
				r.crc.Write(r.cur)
			}
			r.length += uint64(len(r.cur))
		}
		n := copy(p, r.cur)
		p, r.cur = p[n:], r.cur[n:]
	}
	return true
}

// u32s fills dst with little-endian words.
func (r *snapReader) u32s(dst []uint32) bool {
	var buf [4096]byte
	for len(dst) > 0 {
		n := min(len(dst), len(buf)/4)
		if !r.read(buf[:4*n]) {
			return false
		}
		for i := range n {
			dst[i] = binary.LittleEndian.Uint32(buf[4*i:])
		}
		dst = dst[n:]
	}
	return true
}

// finish checks that the stream ended where the head says, with its checksum.
func (r *snapReader) finish(h snapHead) bool {
	if len(r.cur) != 0 || r.bad {
		return false
	}
	if h.v1 != nil {
		return true // the head's checksum covered the stream
	}
	if r.next() != nil || r.bad {
		return false
	}
	return r.length == h.length && (r.crc == nil || r.crc.Sum32() == h.sum)
}

// decodeSnapshot loads links into g, whose vectors and slot set (live[i])
// come from the stored records. Slots in touched were written after the
// snapshot (replayed by the caller) and may differ from it; every other slot
// must be live exactly when the snapshot has it linked. It checks the
// checksum, the sequence number and that every link names a slot that is
// live or touched; on any error g's links are unusable and the caller
// rebuilds. live must cover the snapshot's slots (snapshotSlots).
func decodeSnapshot(g *graph, r *snapReader, h snapHead, live []bool, touched map[uint32]bool) error {
	var hdr [24]byte
	if !r.read(hdr[:]) {
		return errBadSnap
	}
	if binary.LittleEndian.Uint64(hdr[0:]) != h.seq {
		return errBadSnap
	}
	n := int(binary.LittleEndian.Uint32(hdr[8:]))
	m := int(binary.LittleEndian.Uint32(hdr[12:]))
	entry := binary.LittleEndian.Uint32(hdr[16:])
	maxLevel := int(int32(binary.LittleEndian.Uint32(hdr[20:])))
	if m != g.m || n > len(live) {
		return errStaleSnap
	}
	if uint64(n)*(1+4*uint64(g.m0+1)) > h.length {
		return errBadSnap
	}
	g.grow(n)
	lv := make([]byte, n)
	if !r.read(lv) {
		return errBadSnap
	}
	count := 0
	for i := 0; i < n; i++ {
		l := int8(lv[i])
		if ((l >= 0) != live[i] && !touched[uint32(i)]) || int(l) > maxLevel || l > MaxLevel {
			return errStaleSnap
		}
		g.levels[i] = l
		if l >= 0 {
			count++
		}
	}
	stride0 := g.m0 + 1
	checkList := func(list []uint32, max int) error {
		if int(list[0]) > max {
			return errBadSnap
		}
		for _, x := range list[1 : 1+list[0]] {
			if int(x) >= n || (!live[x] && !touched[x]) {
				return errBadSnap
			}
		}
		return nil
	}
	if !r.u32s(g.links0[:n*stride0]) {
		return errBadSnap
	}
	for i := 0; i < n; i++ {
		if g.levels[i] >= 0 {
			if err := checkList(g.links0[i*stride0:(i+1)*stride0], g.m0); err != nil {
				return err
			}
		}
	}
	for i := 0; i < n; i++ {
		l := int(g.levels[i])
		if l <= 0 {
			g.upper[i] = nil
			continue
		}
		u := make([]uint32, l*(g.m+1))
		if !r.u32s(u) {
			return errBadSnap
		}
		for lc := 0; lc < l; lc++ {
			if err := checkList(u[lc*(g.m+1):(lc+1)*(g.m+1)], g.m); err != nil {
				return err
			}
		}
		g.upper[i] = u
	}
	if !r.finish(h) {
		return errBadSnap
	}
	g.recountIn0()
	for i := n; i < len(live); i++ { // slots created after the snapshot
		if live[i] && !touched[uint32(i)] {
			return errStaleSnap
		}
	}
	if count > 0 && (int(entry) >= n || g.levels[entry] < 0 || int(g.levels[entry]) != maxLevel) {
		return errBadSnap
	}
	g.count = count
	if count == 0 {
		g.top.Store(0)
	} else {
		g.setEntryPoint(entry, maxLevel)
	}
	return nil
}

// snapshotSlots is the slot count a snapshot covers (slots freed at the end
// after it still count), read from the stream's first bytes; 0 when unknown.
func snapshotSlots(b *bolt.Bucket, h snapHead) int {
	r := openSnapshot(b, h)
	var hdr [12]byte
	if !r.read(hdr[:]) {
		return 0
	}
	return int(binary.LittleEndian.Uint32(hdr[8:]))
}
