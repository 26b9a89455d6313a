package rerank

import (
	"math"
	"math/rand"
	"slices"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// The reference: the paper's algorithm over a dense distance matrix, written after the authors'
// re_ranking (k_reciprocal_neigh, the expansion, local query expansion, and the Jaccard distance
// over whole rows), with 1 - cosine as the original distance as in this package. With
// Params.RowScale the authors' normalisation applies: each row's distances are divided by the row's
// largest distance to the first min(n, RowScale) vectors (the sample, all the stored items in the
// tests), both in the Gaussian weights and in the final distance.

func dot32(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// denseRerank returns the final distances from each of the items rows to every item of vecs.
func denseRerank(vecs [][]float32, p Params, rows ...int) map[int][]float32 {
	n := len(vecs)
	d := make([][]float32, n)
	rank := make([][]int, n)
	for i := range vecs {
		d[i] = make([]float32, n)
		for j := range vecs {
			if i != j {
				d[i][j] = 1 - dot32(vecs[i], vecs[j])
			}
		}
		rank[i] = make([]int, n)
		for j := range rank[i] {
			rank[i][j] = j
		}
		slices.SortFunc(rank[i], func(a, b int) int {
			return cmpNeighbor(Neighbor{uint32(a), d[i][a]}, Neighbor{uint32(b), d[i][b]})
		})
	}
	recipSet := func(i, k int) []int {
		var out []int
		for _, c := range rank[i][:min(k+1, n)] {
			if slices.Contains(rank[c][:min(k+1, n)], i) {
				out = append(out, c)
			}
		}
		return out
	}
	scale := make([]float32, n)
	for i := range vecs {
		scale[i] = 1
		var m float32
		for j := range min(n, p.RowScale) {
			m = max(m, d[i][j])
		}
		if p.RowScale > 0 && m > 0 {
			scale[i] = m
		}
	}
	v := make([][]float64, n)
	for i := range vecs {
		r := recipSet(i, p.K1)
		exp := slices.Clone(r)
		for _, c := range r {
			cr := recipSet(c, p.half())
			in := 0
			for _, x := range cr {
				if slices.Contains(r, x) {
					in++
				}
			}
			if float64(in) > 2.0/3*float64(len(cr)) {
				exp = append(exp, cr...)
			}
		}
		slices.Sort(exp)
		exp = slices.Compact(exp)
		v[i] = make([]float64, n)
		var sum float64
		for _, j := range exp {
			v[i][j] = math.Exp(-float64(d[i][j] / scale[i]))
			sum += v[i][j]
		}
		for _, j := range exp {
			v[i][j] /= sum
		}
	}
	vq := make([][]float64, n)
	for i := range vecs {
		vq[i] = make([]float64, n)
		rows := rank[i][:min(p.K2, n)]
		for _, r := range rows {
			for j, x := range v[r] {
				vq[i][j] += x / float64(len(rows))
			}
		}
	}
	final := map[int][]float32{}
	for _, i := range rows {
		final[i] = make([]float32, n)
		for j := range vecs {
			var m float64
			for k := range vq[i] {
				m += min(vq[i][k], vq[j][k])
			}
			jac := 1 - m/(2-m)
			final[i][j] = p.Lambda*d[i][j]/scale[i] + (1-p.Lambda)*float32(jac)
		}
	}
	return final
}

// world is a set of vectors by slot, some live, with exact neighbour search.
type world struct {
	vecs [][]float32
	live []bool
}

func newWorld(n, dim int, seed int64) *world {
	return &world{vecs: synth.Clustered(n, dim, max(2, n/40), 1, seed), live: make([]bool, n)}
}

func (w *world) dist(a, b uint32) float32 { return 1 - dot32(w.vecs[a], w.vecs[b]) }

// nearest returns every live slot but skip, ascending by distance to v.
func (w *world) nearest(v []float32, skip uint32) []Neighbor {
	var out []Neighbor
	for s, ok := range w.live {
		if ok && uint32(s) != skip {
			out = append(out, Neighbor{uint32(s), 1 - dot32(v, w.vecs[s])})
		}
	}
	slices.SortFunc(out, cmpNeighbor)
	return out
}

// fresh builds a state from exact lists of the live slots.
func (w *world) fresh(p Params) *State {
	st, _ := New(p)
	for s, ok := range w.live {
		if ok {
			st.SetList(uint32(s), w.nearest(w.vecs[s], uint32(s)))
		}
	}
	st.Rebuild(w.dist, 2)
	return st
}

func (w *world) add(st *State, s uint32) Stats {
	w.live[s] = true
	p := st.PlanAdd(s, w.nearest(w.vecs[s], s), w.dist)
	st.Apply(p)
	return p.Stats()
}

func (w *world) remove(st *State, s uint32) Stats {
	w.live[s] = false
	p := st.PlanRemove(s, func(y uint32) []Neighbor { return w.nearest(w.vecs[y], y) }, w.dist)
	st.Apply(p)
	return p.Stats()
}

func randomUnit(rng *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	var s float64
	for i := range v {
		x := rng.NormFloat64()
		v[i] = float32(x)
		s += x * x
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(s))
	}
	return v
}
