package index

import (
	"testing"
)

// buildGraph inserts vecs into a fresh in-memory graph (slot i = vecs[i]).
func buildGraph(t testing.TB, vecs [][]float32, m, efc int) *graph {
	t.Helper()
	g := newGraph(len(vecs[0]), m, efc, 0, 42)
	for i, v := range vecs {
		g.setVector(uint32(i), v)
		g.insert(uint32(i))
	}
	return g
}

func recallAt(g *graph, qs [][]float32, k, ef int, accept func(uint32) bool) float64 {
	hit, tot := 0, 0
	for _, q := range qs {
		truth := g.exact(q, k, nil, accept)
		got := g.search(q, k, ef, accept)
		want := map[uint32]bool{}
		for _, c := range truth {
			want[c.id] = true
		}
		for _, c := range got {
			if want[c.id] {
				hit++
			}
		}
		tot += len(truth)
	}
	if tot == 0 {
		return 1
	}
	return float64(hit) / float64(tot)
}

func TestGraphRecall(t *testing.T) {
	n, dim := 20000, 1280
	if testing.Short() {
		n = 3000
	}
	vecs := SyntheticClustered(n+200, dim, n/100, 1.0, 1)
	g := buildGraph(t, vecs[:n], 16, 200)
	for _, ef := range []int{10, 40, DefaultEfSearch} {
		r := recallAt(g, vecs[n:], 10, ef, nil)
		t.Logf("n=%d ef=%d recall@10=%.4f levels=%d", n, ef, r, g.maxLevel+1)
		if ef == DefaultEfSearch && r < 0.98 {
			t.Errorf("recall@10 at default ef %d = %.4f, want >= 0.98", ef, r)
		}
	}
}
