package index

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Graph snapshot, stored under the key "graph" in a collection's bucket:
//
//	"LKG1" | seq u64 | slots u32 | m u32 | entry u32 | maxLevel i32 |
//	levels [slots]int8 | layer-0 links [slots*(2m+1)]u32 |
//	upper links of each slot with level > 0 [level*(m+1)]u32 | crc32c u32
//
// seq is the collection's write sequence number when the snapshot was taken;
// a snapshot whose seq differs from the stored one is stale.
var (
	snapMagic    = []byte("LKG1")
	crcTable     = crc32.MakeTable(crc32.Castagnoli)
	errBadSnap   = errors.New("corrupt graph snapshot")
	errStaleSnap = errors.New("stale graph snapshot")
)

func encodeSnapshot(g *graph, seq uint64) []byte {
	n := len(g.levels)
	size := 4 + 8 + 4*4 + n + 4*len(g.links0) + 4
	for _, u := range g.upper {
		size += 4 * len(u)
	}
	b := make([]byte, 0, size)
	b = append(b, snapMagic...)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = binary.LittleEndian.AppendUint32(b, uint32(g.m))
	b = binary.LittleEndian.AppendUint32(b, g.entry)
	b = binary.LittleEndian.AppendUint32(b, uint32(int32(g.maxLevel)))
	for _, l := range g.levels {
		b = append(b, byte(l))
	}
	for _, x := range g.links0 {
		b = binary.LittleEndian.AppendUint32(b, x)
	}
	for i, l := range g.levels {
		if l > 0 {
			for _, x := range g.upper[i] {
				b = binary.LittleEndian.AppendUint32(b, x)
			}
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// snapshotSeq returns the write sequence number a snapshot reflects.
func snapshotSeq(b []byte) (uint64, bool) {
	if len(b) < 12 || string(b[:4]) != string(snapMagic) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[4:]), true
}

// decodeSnapshot loads links into g, whose vectors and slot set (live[i])
// come from the stored records. Slots in touched were written after the
// snapshot (replayed by the caller) and may differ from it; every other slot
// must be live exactly when the snapshot has it linked. It checks the
// checksum, the sequence number and that every link names a slot that is
// live or touched; on any error g's links are unusable and the caller
// rebuilds.
func decodeSnapshot(g *graph, b []byte, seq uint64, live []bool, touched map[uint32]bool) error {
	if len(b) < 4+8+16+4 || string(b[:4]) != string(snapMagic) {
		return errBadSnap
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return errBadSnap
	}
	if binary.LittleEndian.Uint64(b[4:]) != seq {
		return errStaleSnap
	}
	n := int(binary.LittleEndian.Uint32(b[12:]))
	m := int(binary.LittleEndian.Uint32(b[16:]))
	entry := binary.LittleEndian.Uint32(b[20:])
	maxLevel := int(int32(binary.LittleEndian.Uint32(b[24:])))
	if m != g.m || n > len(live) {
		return errStaleSnap
	}
	p := 28
	if len(body)-p < n {
		return errBadSnap
	}
	g.grow(n)
	count := 0
	for i := 0; i < n; i++ {
		l := int8(body[p+i])
		if ((l >= 0) != live[i] && !touched[uint32(i)]) || int(l) > maxLevel {
			return errStaleSnap
		}
		g.levels[i] = l
		if l >= 0 {
			count++
		}
	}
	p += n
	stride0 := g.m0 + 1
	if (len(body)-p)/4 < n*stride0 {
		return errBadSnap
	}
	u32 := func() uint32 { x := binary.LittleEndian.Uint32(body[p:]); p += 4; return x }
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
	for i := range g.links0[:n*stride0] {
		g.links0[i] = u32()
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
		k := l * (g.m + 1)
		if (len(body)-p)/4 < k {
			return errBadSnap
		}
		u := make([]uint32, k)
		for j := range u {
			u[j] = u32()
		}
		for lc := 0; lc < l; lc++ {
			if err := checkList(u[lc*(g.m+1):(lc+1)*(g.m+1)], g.m); err != nil {
				return err
			}
		}
		g.upper[i] = u
	}
	if p != len(body) {
		return errBadSnap
	}
	for i := n; i < len(live); i++ { // slots created after the snapshot
		if live[i] && !touched[uint32(i)] {
			return errStaleSnap
		}
	}
	if count > 0 && (int(entry) >= n || g.levels[entry] < 0 || int(g.levels[entry]) != maxLevel) {
		return errBadSnap
	}
	if count == 0 {
		maxLevel = -1
	}
	g.entry, g.maxLevel, g.count = entry, maxLevel, count
	return nil
}
