//go:build !amd64

package index

var hasSQ8AVX2 = false

func dotQ16U8(q []int16, c []uint8) int32 { return dotQ16U8Go(q, c) }

func decodeU8(dst []float32, c []uint8, lo, st []float32) { decodeU8Go(dst, c, lo, st) }

func dotF32U8(w []float32, c []uint8) float32 { return dotF32U8Go(w, c) }

func quantizeI16(dst []int16, w []float32, k float32) { quantizeI16Go(dst, w, k) }

func prefetchBytes(p *uint8, n int) {}
