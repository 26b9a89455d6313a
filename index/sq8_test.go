package index

import (
	"math"
	"math/rand"
	"testing"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// TestSQ8KernelsAgree holds the assembly kernels to the pure-Go ones on every length around the
// vector widths (tails included) and on extreme values (the int16 bound, code 255).
func TestSQ8KernelsAgree(t *testing.T) {
	if !hasSQ8AVX2 {
		t.Skip("no AVX2+FMA: only the Go kernels run here")
	}
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{1, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 128, 1280, 1283, 2048} {
		for trial := range 3 {
			q := make([]int16, n)
			c := make([]uint8, n)
			w := make([]float32, n)
			lo := make([]float32, n)
			st := make([]float32, n)
			bound := int(min(32767, (math.MaxInt32-1)/(255*n)))
			for i := range q {
				q[i] = int16(rng.Intn(2*bound+1) - bound)
				c[i] = uint8(rng.Intn(256))
				w[i] = float32(rng.NormFloat64())
				lo[i] = float32(rng.NormFloat64())
				st[i] = float32(rng.Float64())
				if trial == 2 { // extremes
					q[i], c[i] = int16(bound), 255
				}
			}
			if got, want := dotQ16U8(q, c), dotQ16U8Go(q, c); got != want {
				t.Errorf("n=%d dotQ16U8 = %d, Go %d", n, got, want)
			}
			got, want := dotF32U8(w, c), dotF32U8Go(w, c)
			if d := math.Abs(float64(got - want)); d > 1e-3*math.Max(1, math.Abs(float64(want))) {
				t.Errorf("n=%d dotF32U8 = %v, Go %v", n, got, want)
			}
			qa, qb := make([]int16, n), make([]int16, n)
			k := float32(bound) / 8
			quantizeI16(qa, w, k)
			quantizeI16Go(qb, w, k)
			for i := range qa {
				if qa[i] != qb[i] {
					t.Fatalf("n=%d quantize[%d] (%v) = %d, Go %d", n, i, w[i]*k, qa[i], qb[i])
				}
			}
			a, b := make([]float32, n), make([]float32, n)
			decodeU8(a, c, lo, st)
			decodeU8Go(b, c, lo, st)
			for i := range a {
				if math.Abs(float64(a[i]-b[i])) > 1e-4*math.Max(1, math.Abs(float64(b[i]))) {
					t.Fatalf("n=%d decode[%d] = %v, Go %v", n, i, a[i], b[i])
				}
			}
		}
	}
}

// TestSQ8Accuracy: on unit vectors shaped like embeddings, the quantised dot product (both query
// forms) is within 0.005 of the float one, and the ranges survive a round trip through bytes.
func TestSQ8Accuracy(t *testing.T) {
	vecs := synth.Clustered(600, 1280, 8, 1, 4)
	tr := newSQ8Trainer(1280)
	for _, v := range vecs[:500] {
		tr.add(v)
	}
	s := tr.quantizer()
	codes := make([][]uint8, len(vecs))
	for i, v := range vecs {
		codes[i] = make([]uint8, 1280)
		s.encode(codes[i], v)
	}
	var q sqQuery
	var worst float64
	for _, v := range vecs[500:] {
		for _, fast := range []bool{true, false} {
			s.prepare(&q, v, fast)
			for i := 0; i < len(vecs); i += 7 {
				d := math.Abs(float64(s.dot(&q, codes[i]) - dot(v, vecs[i])))
				worst = max(worst, d)
			}
		}
	}
	t.Logf("worst |quantised - float| dot = %.5f", worst)
	if worst > 0.005 {
		t.Errorf("quantised dot off by %.5f", worst)
	}
	back, err := unmarshalSQ8(s.marshal(), 1280)
	if err != nil || back.lo[3] != s.lo[3] || back.hi[1279] != s.hi[1279] {
		t.Fatalf("round trip: %v", err)
	}
	b := s.marshal()
	for _, bad := range [][]byte{b[:len(b)-1], append([]byte("LKQ2"), b[4:]...), func() []byte { c := append([]byte(nil), b...); c[20] ^= 1; return c }()} {
		if _, err := unmarshalSQ8(bad, 1280); err == nil {
			t.Error("corrupt ranges accepted")
		}
	}
	if _, err := unmarshalSQ8(b, 64); err == nil {
		t.Error("ranges of another dimension accepted")
	}
}

// BenchmarkSQ8Kernels compares one 1280-d comparison per kernel, over a collection larger than the
// caches and visited in random order, as a graph search does; "prefetched" hints the next vector
// first, as searchLayer does.
func BenchmarkSQ8Kernels(b *testing.B) {
	const n, dim = 50000, 1280
	rng := rand.New(rand.NewSource(1))
	codes := make([]uint8, n*dim)
	floats := make([]float32, n*dim)
	for i := range codes {
		codes[i] = uint8(rng.Intn(256))
		floats[i] = float32(rng.NormFloat64())
	}
	q16 := make([]int16, dim)
	qf := make([]float32, dim)
	for i := range q16 {
		q16[i] = int16(rng.Intn(6000) - 3000)
		qf[i] = float32(rng.NormFloat64())
	}
	order := rng.Perm(n)
	var sink float32
	for _, k := range []struct {
		name string
		fn   func(o int) float32
	}{
		{"float32", func(o int) float32 { return dot(qf, floats[o:o+dim]) }},
		{"q16u8", func(o int) float32 { return float32(dotQ16U8(q16, codes[o:o+dim])) }},
		{"q16u8-prefetched", func(o int) float32 {
			next := (o/dim + 1) % n * dim
			prefetchBytes(&codes[next], dim)
			return float32(dotQ16U8(q16, codes[o:o+dim]))
		}},
		{"f32u8", func(o int) float32 { return dotF32U8(qf, codes[o:o+dim]) }},
		{"q16u8-go", func(o int) float32 { return float32(dotQ16U8Go(q16, codes[o:o+dim])) }},
	} {
		b.Run(k.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				sink += k.fn(order[i%n] * dim)
			}
		})
	}
	_ = sink
	b.Run("prepare", func(b *testing.B) {
		tr := newSQ8Trainer(dim)
		tr.add(qf)
		s := tr.quantizer()
		var q sqQuery
		for i := 0; i < b.N; i++ {
			s.prepare(&q, qf, true)
		}
	})
}

// FuzzUnmarshalSQ8: stored ranges are read back from bbolt; damaged bytes are refused, never a
// panic, and what is accepted encodes and decodes within its ranges.
func FuzzUnmarshalSQ8(f *testing.F) {
	tr := newSQ8Trainer(8)
	tr.add([]float32{0.1, -0.2, 0.3, 0, 0.5, -0.5, 0.2, 0.1})
	tr.add([]float32{-0.1, 0.2, 0.1, 0.4, 0.1, -0.1, 0, 0.3})
	f.Add(tr.quantizer().marshal())
	f.Add([]byte("LKQ1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := unmarshalSQ8(b, 8)
		if err != nil {
			return
		}
		code, back := make([]uint8, 8), make([]float32, 8)
		q.encode(code, []float32{1, -1, 0, 0.5, -0.5, 0.25, 0, 2})
		q.decode(back, code)
		for j, x := range back {
			if x < q.lo[j]-1e-6 || x > q.hi[j]+1e-6 {
				t.Fatalf("dimension %d decodes to %v outside [%v, %v]", j, x, q.lo[j], q.hi[j])
			}
		}
	})
}
