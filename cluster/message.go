package cluster

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Op is what a mutation does to its item.
type Op uint8

// Mutation ops.
const (
	OpUpsert   Op = 1 // store the item (vector, metadata, thumbnail, source), replacing it
	OpMetaEdit Op = 2 // apply Metadata as a JSON merge patch (RFC 7386) to the stored item
	OpDelete   Op = 3 // delete the item
)

func (o Op) String() string {
	switch o {
	case OpUpsert:
		return "upsert"
	case OpMetaEdit:
		return "meta-edit"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Mutation is one change to one item: the payload of a log message. The node that takes a write
// does the expensive, non-deterministic work (decoding, embedding, thumbnails, timestamps) and
// puts its result here, so that every replica applies the same bytes the same way.
type Mutation struct {
	Op Op
	ID string
	// IfVersion, when not 0, is checked when a replica applies the mutation (index.Item.IfVersion).
	IfVersion uint64
	// UpdatedAt is set by the writer; zero means the time Publish encodes it.
	UpdatedAt time.Time
	// Vector, Thumbnail, Source and ContentHash: OpUpsert only.
	Vector      []float32
	Thumbnail   []byte
	Source      []byte
	ContentHash string
	// Metadata: OpUpsert, the item's JSON object; OpMetaEdit, a JSON merge patch.
	Metadata json.RawMessage
	// MsgID is the idempotency key sent as Nats-Msg-Id; the stream stores a message once per id
	// within its duplicate window (2 minutes). Empty: Publish makes one, so its own retries are
	// idempotent; a caller retrying across Publish calls sets its own.
	MsgID string
}

// formatV1 is the first byte of every encoded mutation; a replica refuses other formats.
const formatV1 = 1

// AppendBinary encodes m after dst: format, op, if-version, updated-at (Unix ns), then
// length-prefixed id, content hash, metadata, thumbnail and source, then the vector's dims and
// its float32 values (little endian). MsgID travels as a header, not here.
func (m *Mutation) AppendBinary(dst []byte) ([]byte, error) {
	if m.Op < OpUpsert || m.Op > OpDelete {
		return dst, fmt.Errorf("%w: unknown op %d", ErrInvalidMutation, m.Op)
	}
	if m.ID == "" {
		return dst, fmt.Errorf("%w: empty id", ErrInvalidMutation)
	}
	dst = append(dst, formatV1, byte(m.Op))
	dst = binary.AppendUvarint(dst, m.IfVersion)
	var at int64
	if !m.UpdatedAt.IsZero() {
		at = m.UpdatedAt.UnixNano()
	}
	dst = binary.AppendVarint(dst, at)
	for _, f := range [][]byte{[]byte(m.ID), []byte(m.ContentHash), m.Metadata, m.Thumbnail, m.Source} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Vector)))
	for _, x := range m.Vector {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
	}
	return dst, nil
}

// DecodeMutation decodes what AppendBinary wrote. The result does not alias b.
func DecodeMutation(b []byte) (Mutation, error) {
	var m Mutation
	fail := func(what string) (Mutation, error) {
		return Mutation{}, fmt.Errorf("%w: %s", ErrInvalidMutation, what)
	}
	if len(b) < 2 || b[0] != formatV1 {
		return fail("unknown format")
	}
	m.Op = Op(b[1])
	if m.Op < OpUpsert || m.Op > OpDelete {
		return fail("unknown op")
	}
	p := 2
	v, n := uvarint(b[p:])
	if n <= 0 {
		return fail("bad if-version")
	}
	m.IfVersion, p = v, p+n
	at, n := varint(b[p:])
	if n <= 0 {
		return fail("bad timestamp")
	}
	p += n
	if at != 0 {
		m.UpdatedAt = time.Unix(0, at).UTC()
	}
	fields := make([][]byte, 5)
	for i := range fields {
		l, n := uvarint(b[p:])
		if n <= 0 || l > uint64(len(b)-p-n) {
			return fail("truncated field")
		}
		p += n
		if l > 0 {
			fields[i] = append([]byte(nil), b[p:p+int(l)]...)
		}
		p += int(l)
	}
	m.ID, m.ContentHash, m.Metadata, m.Thumbnail, m.Source = string(fields[0]), string(fields[1]), fields[2], fields[3], fields[4]
	if m.ID == "" {
		return fail("empty id")
	}
	dims, n := uvarint(b[p:])
	if n <= 0 || dims > uint64(len(b)-p-n)/4 {
		return fail("truncated vector")
	}
	p += n
	if dims > 0 {
		m.Vector = make([]float32, dims)
		for i := range m.Vector {
			m.Vector[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[p:]))
			p += 4
		}
	}
	if p != len(b) {
		return fail("trailing bytes")
	}
	return m, nil
}

// uvarint is binary.Uvarint that also refuses a non-minimal encoding (n < 0), so that every
// accepted message has exactly one encoding and its Nats-Msg-Id names one content.
func uvarint(b []byte) (uint64, int) {
	v, n := binary.Uvarint(b)
	if n > 0 && n != len(binary.AppendUvarint(nil, v)) {
		return 0, -1
	}
	return v, n
}

// varint is binary.Varint that also refuses a non-minimal encoding.
func varint(b []byte) (int64, int) {
	v, n := binary.Varint(b)
	if n > 0 && n != len(binary.AppendVarint(nil, v)) {
		return 0, -1
	}
	return v, n
}
