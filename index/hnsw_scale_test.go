package index

import (
	"testing"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// recallVsTruth is recall@k of searches (re-scored from vecs when g is compressed) against exact
// float search over vecs.
func recallVsTruth(g *graph, vecs, qs [][]float32, k, ef int) float64 {
	fetch := func(slot uint32, dst []float32) bool { copy(dst, vecs[slot]); return true }
	hit := 0
	for _, q := range qs {
		h := make(maxHeap, 0, k+1)
		for i, v := range vecs {
			h.push(cand{1 - dot(q, v), uint32(i)})
			if len(h) > k {
				h.pop()
			}
		}
		want := map[uint32]bool{}
		for _, c := range h {
			want[c.id] = true
		}
		got := g.search(q, k, ef, nil)
		if g.sq != nil {
			got = rescore(q, got, k, fetch)
		}
		for _, c := range got {
			if want[c.id] {
				hit++
			}
		}
	}
	return float64(hit) / float64(k*len(qs))
}

// buildStored builds a graph over vecs with float storage, or SQ8 codes with q's ranges.
func buildStored(t testing.TB, vecs [][]float32, m, efc int, q *sq8) *graph {
	t.Helper()
	g := newGraph(len(vecs[0]), m, efc, 0, 42)
	if q != nil {
		g.compress(q)
	}
	for i, v := range vecs {
		g.setVector(uint32(i), v)
		g.insert(uint32(i))
	}
	return g
}

// TestCompressedRecall: SQ8 storage with re-scoring loses at most 0.005 recall@10 against float
// storage at the same ef (graphs built each with its own storage, on 1280-d vectors shaped like
// embeddings), and the ranges come from the first SQ8TrainAt items, as in a collection.
func TestCompressedRecall(t *testing.T) {
	const n, nq, dim = 3000, 100, 1280
	vecs := synth.Clustered(n+nq, dim, 12, 1, 11)
	base, qs := vecs[:n], vecs[n:]
	tr := newSQ8Trainer(dim)
	for _, v := range base[:SQ8TrainAt] {
		tr.add(v)
	}
	fl := buildStored(t, base, 16, 100, nil)
	sq := buildStored(t, base, 16, 100, tr.quantizer())
	for _, ef := range []int{16, 32, DefaultEfSearch} {
		rf, rs := recallVsTruth(fl, base, qs, 10, ef), recallVsTruth(sq, base, qs, 10, ef)
		t.Logf("ef=%d recall@10 float %.4f, sq8 %.4f", ef, rf, rs)
		if rs < rf-0.005 {
			t.Errorf("ef=%d: compressed recall %.4f, float %.4f (more than 0.005 lower)", ef, rs, rf)
		}
	}
	if r := reachable(sq); r != n {
		t.Errorf("compressed graph: %d of %d reachable", r, n)
	}
	if m := sq.memory(); m.Vectors > int64(n*dim)+16*dim {
		t.Errorf("compressed graph holds %d bytes of vectors for %d items", m.Vectors, n)
	}
}
