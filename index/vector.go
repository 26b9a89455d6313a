package index

import (
	"math"

	"github.com/viterin/vek/vek32"
)

// dot is the similarity kernel: vectors are stored unit-normalised, so the
// dot product is the cosine similarity. vek uses AVX2+FMA where the CPU has it.
func dot(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	return vek32.Dot(a, b)
}

// Dot is the same kernel for callers outside the index (diversification, pixel signatures,
// calibration): the cosine similarity of two unit vectors. Vectors of different lengths give 0
// instead of the kernel's panic.
func Dot(a, b []float32) float32 {
	if len(a) != len(b) {
		return 0
	}
	return dot(a, b)
}

// normalize returns v scaled to unit length (a copy) or ok=false when v has a
// non-finite component or a zero norm.
func normalize(v []float32) (out []float32, ok bool) {
	out = make([]float32, len(v))
	if !normalizeInto(out, v) {
		return nil, false
	}
	return out, true
}

// normalizeInto writes v scaled to unit length into dst (len(v) long), or
// reports false as normalize does.
func normalizeInto(dst, v []float32) bool {
	var s float64
	for _, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return false
		}
		s += f * f
	}
	if s == 0 || math.IsInf(s, 0) || math.IsNaN(s) {
		return false
	}
	inv := 1 / math.Sqrt(s)
	for i, x := range v {
		dst[i] = float32(float64(x) * inv)
	}
	return true
}
