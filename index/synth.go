package index

import (
	"math"
	"math/rand"
)

// SyntheticClustered returns n unit vectors of dim dimensions drawn around
// `clusters` random centres (Gaussian noise of norm ~spread around a unit
// centre), deterministic for a seed. Clustered data is harder for HNSW than
// uniform data and closer to CNN embeddings of product photos.
func SyntheticClustered(n, dim, clusters int, spread float64, seed int64) [][]float32 {
	rng := rand.New(rand.NewSource(seed))
	clusters = max(clusters, 1)
	centres := make([][]float64, clusters)
	for i := range centres {
		c := make([]float64, dim)
		var s float64
		for j := range c {
			c[j] = rng.NormFloat64()
			s += c[j] * c[j]
		}
		for j := range c {
			c[j] /= math.Sqrt(s)
		}
		centres[i] = c
	}
	sd := spread / math.Sqrt(float64(dim))
	out := make([][]float32, n)
	for i := range out {
		c := centres[rng.Intn(clusters)]
		v := make([]float32, dim)
		var s float64
		for j := range v {
			x := c[j] + rng.NormFloat64()*sd
			v[j] = float32(x)
			s += x * x
		}
		inv := float32(1 / math.Sqrt(s))
		for j := range v {
			v[j] *= inv
		}
		out[i] = v
	}
	return out
}
