package index

import "golang.org/x/sys/cpu"

// The SQ8 kernels in sq8_amd64.s need AVX2 (and FMA for decoding); other CPUs use the pure-Go
// loops in sq8.go, which TestSQ8KernelsAgree holds to the same results.
var hasSQ8AVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func dotQ16U8AVX2(q *int16, c *uint8, n int) int32

//go:noescape
func dotF32U8AVX2(w *float32, c *uint8, n int) float32

//go:noescape
func decodeU8AVX2(dst *float32, c *uint8, lo, st *float32, n int)

// dotQ16U8 is Σ q[i]*c[i] (len(c) == len(q)).
func dotQ16U8(q []int16, c []uint8) int32 {
	n := len(c)
	if !hasSQ8AVX2 || n < 16 {
		return dotQ16U8Go(q, c)
	}
	_ = q[n-1]
	body := n &^ 15
	s := dotQ16U8AVX2(&q[0], &c[0], body)
	if body < n {
		s += dotQ16U8Go(q[body:n], c[body:])
	}
	return s
}

// decodeU8 sets dst[i] = lo[i] + st[i]*c[i] (all of len(dst)).
func decodeU8(dst []float32, c []uint8, lo, st []float32) {
	n := len(dst)
	if !hasSQ8AVX2 || n < 8 {
		decodeU8Go(dst, c, lo, st)
		return
	}
	_, _, _ = c[n-1], lo[n-1], st[n-1]
	body := n &^ 7
	decodeU8AVX2(&dst[0], &c[0], &lo[0], &st[0], body)
	if body < n {
		decodeU8Go(dst[body:], c[body:n], lo[body:n], st[body:n])
	}
}

// dotF32U8 is Σ w[i]*float32(c[i]) (len(c) == len(w)).
func dotF32U8(w []float32, c []uint8) float32 {
	n := len(c)
	if !hasSQ8AVX2 || n < 8 {
		return dotF32U8Go(w, c)
	}
	_ = w[n-1]
	body := n &^ 7
	s := dotF32U8AVX2(&w[0], &c[0], body)
	if body < n {
		s += dotF32U8Go(w[body:n], c[body:])
	}
	return s
}

//go:noescape
func prefetchBytes(p *uint8, n int)

//go:noescape
func quantizeI16AVX2(dst *int16, w *float32, k float32, n int)

// quantizeI16 sets dst[i] = round(w[i]*k); |w[i]*k| must fit an int16.
func quantizeI16(dst []int16, w []float32, k float32) {
	n := len(w)
	if !hasSQ8AVX2 || n < 16 {
		quantizeI16Go(dst, w, k)
		return
	}
	_ = dst[n-1]
	body := n &^ 15
	quantizeI16AVX2(&dst[0], &w[0], k, body)
	if body < n {
		quantizeI16Go(dst[body:n], w[body:], k)
	}
}
