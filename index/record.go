package index

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// record is an item as stored in the items bucket (key = external id).
// Thumbnails live in their own bucket so that loading never reads them.
//
// Encoding (version 2): 0x02 | slot uvarint | updatedAt varint (unix ns) |
// item version uvarint | len+contentHash | len+metadata | dims uvarint |
// dims x float32 LE. Version 1 records (no item version) are still read; their
// items report version 1, lower than any write made since.
type record struct {
	slot      uint32
	updatedAt time.Time
	version   uint64
	hash      string
	meta      []byte
	vec       []float32
}

const (
	recordV1      = 1
	recordVersion = 2
)

var errCorruptRecord = errors.New("corrupt record")

func appendRecord(dst []byte, r *record) []byte {
	dst = append(dst, recordVersion)
	dst = binary.AppendUvarint(dst, uint64(r.slot))
	dst = binary.AppendVarint(dst, r.updatedAt.UnixNano())
	dst = binary.AppendUvarint(dst, r.version)
	dst = binary.AppendUvarint(dst, uint64(len(r.hash)))
	dst = append(dst, r.hash...)
	dst = binary.AppendUvarint(dst, uint64(len(r.meta)))
	dst = append(dst, r.meta...)
	dst = binary.AppendUvarint(dst, uint64(len(r.vec)))
	for _, f := range r.vec {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
	}
	return dst
}

// recordView is a decoded record whose byte fields alias the input (a bbolt
// value, valid only inside its transaction). vecBytes holds dims*4 bytes.
type recordView struct {
	slot      uint32
	updatedAt int64
	version   uint64
	hash      []byte
	meta      []byte
	vecBytes  []byte
}

func (v *recordView) dims() int { return len(v.vecBytes) / 4 }

// vectorInto decodes the vector into dst (len dims).
func (v *recordView) vectorInto(dst []float32) {
	b := v.vecBytes
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// decodeRecordView parses b without copying. It never panics: every length
// is checked against what remains.
func decodeRecordView(b []byte) (recordView, error) {
	var v recordView
	if len(b) < 1 || (b[0] != recordVersion && b[0] != recordV1) {
		return v, errCorruptRecord
	}
	p := 1
	uv := func() (uint64, bool) {
		x, n := binary.Uvarint(b[p:])
		if n <= 0 {
			return 0, false
		}
		p += n
		return x, true
	}
	bytesField := func() ([]byte, bool) {
		n, ok := uv()
		if !ok || n > uint64(len(b)-p) {
			return nil, false
		}
		f := b[p : p+int(n) : p+int(n)]
		p += int(n)
		return f, true
	}
	slot, ok := uv()
	if !ok || slot > math.MaxUint32-1 {
		return v, errCorruptRecord
	}
	v.slot = uint32(slot)
	ts, n := binary.Varint(b[p:])
	if n <= 0 {
		return v, errCorruptRecord
	}
	p += n
	v.updatedAt = ts
	v.version = 1
	if b[0] == recordVersion {
		if v.version, ok = uv(); !ok || v.version == 0 {
			return v, errCorruptRecord
		}
	}
	if v.hash, ok = bytesField(); !ok {
		return v, errCorruptRecord
	}
	if v.meta, ok = bytesField(); !ok {
		return v, errCorruptRecord
	}
	dims, ok := uv()
	if !ok || dims > uint64(len(b)-p)/4 || dims*4 != uint64(len(b)-p) {
		return v, errCorruptRecord
	}
	v.vecBytes = b[p:]
	return v, nil
}

// decodeRecord returns a record that owns its memory.
func decodeRecord(b []byte) (record, error) {
	v, err := decodeRecordView(b)
	if err != nil {
		return record{}, err
	}
	r := record{
		slot:      v.slot,
		updatedAt: time.Unix(0, v.updatedAt).UTC(),
		version:   v.version,
		hash:      string(v.hash),
		meta:      append([]byte(nil), v.meta...),
		vec:       make([]float32, v.dims()),
	}
	v.vectorInto(r.vec)
	return r, nil
}
