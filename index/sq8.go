package index

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"

	"github.com/viterin/vek/vek32"
)

// SQ8 is scalar quantisation to one byte per dimension: each dimension j has
// a range [lo_j, hi_j] learned from the collection, and a component v_j is
// stored as the byte round((v_j-lo_j)/st_j), st_j = (hi_j-lo_j)/255. A
// 1280-d vector shrinks from 5 120 to 1 280 bytes, and a search moves a
// quarter of the memory.
//
// Searching compares a float query with stored codes without decoding them:
// dot(q, decode(c)) = Σ q_j·lo_j + Σ (q_j·st_j)·c_j. The weights q_j·st_j are
// quantised once per query to int16 (a bound small enough that the int32 sum
// cannot overflow), so the inner loop is an integer multiply-add of bytes by
// words (VPMADDWD on AVX2). Comparisons between two stored vectors (the
// neighbour-selection heuristic while building) use the exact float weights
// instead (dotF32U8). Scores returned to callers are re-scored from the float
// vectors kept in bbolt, so quantisation only steers the graph traversal.
type sq8 struct {
	lo, hi []float32 // trained range per dimension (persisted)
	st     []float32 // (hi-lo)/255
	inv    []float32 // 1/st, 0 for a constant dimension
	qmax   float32   // bound on a query weight's int16 magnitude
}

// sq8Margin widens every trained range by this share of its width on both sides, so that items
// added after training rarely fall outside it (those components are clamped).
const sq8Margin = 1.0 / 16

func newSQ8(lo, hi []float32) *sq8 {
	n := len(lo)
	s := &sq8{lo: lo, hi: hi, st: make([]float32, n), inv: make([]float32, n)}
	for j := range lo {
		if w := hi[j] - lo[j]; w > 1e-12 {
			s.st[j] = w / 255
			s.inv[j] = 255 / w
		}
	}
	// Σ|a_j|·255 must stay below 2^31 in the int32 accumulator.
	s.qmax = float32(min(32767, (math.MaxInt32-1)/(255*max(n, 1))))
	return s
}

// sq8Trainer accumulates per-dimension ranges.
type sq8Trainer struct {
	lo, hi []float32
	n      int
}

func newSQ8Trainer(dim int) *sq8Trainer {
	t := &sq8Trainer{lo: make([]float32, dim), hi: make([]float32, dim)}
	for j := range t.lo {
		t.lo[j], t.hi[j] = math.MaxFloat32, -math.MaxFloat32
	}
	return t
}

func (t *sq8Trainer) add(v []float32) {
	lo, hi := t.lo[:len(v)], t.hi[:len(v)]
	for j, x := range v {
		if x < lo[j] {
			lo[j] = x
		}
		if x > hi[j] {
			hi[j] = x
		}
	}
	t.n++
}

// quantizer returns the trained ranges, widened by sq8Margin and kept within [-1, 1] (the
// components of a unit vector).
func (t *sq8Trainer) quantizer() *sq8 {
	lo, hi := make([]float32, len(t.lo)), make([]float32, len(t.hi))
	for j := range lo {
		l, h := t.lo[j], t.hi[j]
		if t.n == 0 {
			l, h = -1, 1
		}
		w := (h - l) * sq8Margin
		lo[j], hi[j] = max(l-w, -1), min(h+w, 1)
	}
	return newSQ8(lo, hi)
}

// encode quantises v into dst (same length), clamping components outside the range.
func (s *sq8) encode(dst []uint8, v []float32) {
	lo, inv := s.lo[:len(v)], s.inv[:len(v)]
	dst = dst[:len(v)]
	for j, x := range v {
		f := (x-lo[j])*inv[j] + 0.5
		switch {
		case f <= 0:
			dst[j] = 0
		case f >= 255:
			dst[j] = 255
		default:
			dst[j] = uint8(f)
		}
	}
}

// decode writes the vector a code stands for into dst.
func (s *sq8) decode(dst []float32, c []uint8) { decodeU8(dst, c, s.lo, s.st) }

// sqQuery is a float vector prepared for comparison with codes: off = Σ v_j·lo_j, w_j = v_j·st_j,
// and (search form) a_j = round(w_j/scale) with |a_j| <= qmax.
type sqQuery struct {
	off   float32
	w     []float32
	a     []int16
	scale float32
	fast  bool // a and scale are set
}

// prepare sets q up for v. fast also quantises the weights (a search's many comparisons); without
// it comparisons use the float weights (exact with respect to the codes).
func (s *sq8) prepare(q *sqQuery, v []float32, fast bool) {
	n := len(v)
	if cap(q.w) < n {
		q.w = make([]float32, n)
		q.a = make([]int16, n)
	}
	q.w, q.a = q.w[:n], q.a[:n]
	q.off = dot(v, s.lo)
	vek32.Mul_Into(q.w, v, s.st[:n])
	q.fast = fast
	if !fast {
		return
	}
	m := max(vek32.Max(q.w), -vek32.Min(q.w))
	if m == 0 {
		clear(q.a)
		q.scale = 0
		return
	}
	q.scale = m / s.qmax
	quantizeI16(q.a, q.w, s.qmax/m)
}

// dot approximates dot(v, decode(c)) for the v q was prepared from.
func (s *sq8) dot(q *sqQuery, c []uint8) float32 {
	if q.fast {
		return q.off + q.scale*float32(dotQ16U8(q.a, c))
	}
	return q.off + dotF32U8(q.w, c)
}

// ---- persistence: "LKQ1" | dims u32 | lo [dims]f32 | hi [dims]f32 | crc32c ----

var (
	sq8Magic  = []byte("LKQ1")
	errBadSQ8 = errors.New("corrupt SQ8 ranges")
)

func (s *sq8) marshal() []byte {
	n := len(s.lo)
	b := make([]byte, 0, 8+8*n+4)
	b = append(b, sq8Magic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	for _, xs := range [][]float32{s.lo, s.hi} {
		for _, x := range xs {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func unmarshalSQ8(b []byte, dim int) (*sq8, error) {
	if len(b) != 8+8*dim+4 || string(b[:4]) != string(sq8Magic) || int(binary.LittleEndian.Uint32(b[4:])) != dim {
		return nil, errBadSQ8
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, errBadSQ8
	}
	lo, hi := make([]float32, dim), make([]float32, dim)
	for j := range dim {
		lo[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[8+4*j:]))
		hi[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[8+4*dim+4*j:]))
		if !(lo[j] <= hi[j]) || lo[j] < -1 || hi[j] > 1 {
			return nil, errBadSQ8
		}
	}
	return newSQ8(lo, hi), nil
}

// ---- pure-Go kernels (other CPUs; the reference the assembly is tested against) ----

func dotQ16U8Go(q []int16, c []uint8) int32 {
	q = q[:len(c)]
	var s0, s1, s2, s3 int32
	i := 0
	for ; i+4 <= len(c); i += 4 {
		s0 += int32(q[i]) * int32(c[i])
		s1 += int32(q[i+1]) * int32(c[i+1])
		s2 += int32(q[i+2]) * int32(c[i+2])
		s3 += int32(q[i+3]) * int32(c[i+3])
	}
	for ; i < len(c); i++ {
		s0 += int32(q[i]) * int32(c[i])
	}
	return s0 + s1 + s2 + s3
}

func dotF32U8Go(w []float32, c []uint8) float32 {
	w = w[:len(c)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(c); i += 4 {
		s0 += w[i] * float32(c[i])
		s1 += w[i+1] * float32(c[i+1])
		s2 += w[i+2] * float32(c[i+2])
		s3 += w[i+3] * float32(c[i+3])
	}
	for ; i < len(c); i++ {
		s0 += w[i] * float32(c[i])
	}
	return s0 + s1 + s2 + s3
}

func decodeU8Go(dst []float32, c []uint8, lo, st []float32) {
	c, lo, st = c[:len(dst)], lo[:len(dst)], st[:len(dst)]
	for j := range dst {
		dst[j] = lo[j] + st[j]*float32(c[j])
	}
}

func quantizeI16Go(dst []int16, w []float32, k float32) {
	dst = dst[:len(w)]
	for j, x := range w {
		dst[j] = int16(math.RoundToEven(float64(x * k)))
	}
}
