// Package synth makes synthetic vectors shaped like CNN embeddings, for the index's tests and the
// search benchmark (internal/bench). It has no dependencies, so the tests of any package can use it.
package synth

import (
	"math"
	"math/rand"
)

// Clustered returns n unit vectors of dim dimensions, deterministic
// for a seed, shaped like CNN embeddings of product photos: `clusters` random
// unit centres; around each, variation along a cluster-specific random
// 32-dimensional subspace (norm ~spread) plus a little isotropic noise. Real
// embeddings have a low intrinsic dimension; isotropic noise in 1280-d would
// make all neighbours nearly equidistant, which no ANN index handles well
// and no photo collection looks like.
func Clustered(n, dim, clusters int, spread float64, seed int64) [][]float32 {
	out := make([][]float32, 0, n)
	ClusteredEach(n, dim, clusters, spread, seed, func(v []float32) error {
		out = append(out, v)
		return nil
	})
	return out
}

// ClusteredEach makes the vectors of Clustered one at a time, in the same order, handing each to
// fn (which may keep it): a million 1280-d vectors can go to a file without being held at once.
// It stops at fn's first error and returns it.
func ClusteredEach(n, dim, clusters int, spread float64, seed int64, fn func(v []float32) error) error {
	const rank = 32
	const iso = 0.15
	rng := rand.New(rand.NewSource(seed))
	clusters = max(clusters, 1)
	unit := func() []float64 {
		c := make([]float64, dim)
		var s float64
		for j := range c {
			c[j] = rng.NormFloat64()
			s += c[j] * c[j]
		}
		for j := range c {
			c[j] /= math.Sqrt(s)
		}
		return c
	}
	centres := make([][]float64, clusters)
	bases := make([][][]float64, clusters)
	for i := range centres {
		centres[i] = unit()
		bases[i] = make([][]float64, rank)
		for r := range bases[i] {
			bases[i][r] = unit()
		}
	}
	sub := spread / math.Sqrt(rank)
	sd := iso / math.Sqrt(float64(dim))
	x := make([]float64, dim)
	for range n {
		ci := rng.Intn(clusters)
		copy(x, centres[ci])
		for _, u := range bases[ci] {
			z := rng.NormFloat64() * sub
			for j := range x {
				x[j] += z * u[j]
			}
		}
		var s float64
		for j := range x {
			x[j] += rng.NormFloat64() * sd
			s += x[j] * x[j]
		}
		v := make([]float32, dim)
		inv := 1 / math.Sqrt(s)
		for j := range v {
			v[j] = float32(x[j] * inv)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

// Groups returns groups×per unit vectors of dim non-negative components (CNN features after
// ReLU), deterministic for a seed, in consecutive groups of per: photos of one product. Every
// vector shares a common part (unrelated photos score high, as with real embeddings), each group
// adds its own, and each member a little noise (within ~ 0.5 gives group-mates at cosine ~0.99 and
// strangers at ~0.94, close together as UKBench's groups of four are).
func Groups(groups, per, dim int, within float64, seed int64) [][]float32 {
	const common = 1.5
	rng := rand.New(rand.NewSource(seed))
	base := make([]float64, dim)
	for j := range base {
		base[j] = math.Abs(rng.NormFloat64())
	}
	out := make([][]float32, 0, groups*per)
	c := make([]float64, dim)
	for range groups {
		for j := range c {
			c[j] = common*base[j] + math.Abs(rng.NormFloat64())
		}
		for range per {
			v := make([]float32, dim)
			var s float64
			for j := range v {
				x := c[j] + within*math.Abs(rng.NormFloat64())
				v[j] = float32(x)
				s += x * x
			}
			inv := 1 / math.Sqrt(s)
			for j := range v {
				v[j] = float32(float64(v[j]) * inv)
			}
			out = append(out, v)
		}
	}
	return out
}
