package index

import (
	"context"
	"math"
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

// buildParallel places every vector, then links them on workers goroutines.
func buildParallel(t testing.TB, vecs [][]float32, m, efc, workers int, q *sq8) *graph {
	t.Helper()
	g := newGraph(len(vecs[0]), m, efc, 0, 42)
	if q != nil {
		g.compress(q)
	}
	slots := make([]uint32, len(vecs))
	for i, v := range vecs {
		g.setVector(uint32(i), v)
		g.place(uint32(i), g.randomLevel())
		slots[i] = uint32(i)
	}
	if err := g.linkAll(context.Background(), slots, workers, nil); err != nil {
		t.Fatal(err)
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
	fl := buildParallel(t, base, 16, 100, 0, nil)
	sq := buildParallel(t, base, 16, 100, 0, tr.quantizer())
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

// TestConcurrentBuildRecall: linking on several goroutines (also run under -race by `make race`)
// builds a graph as good as the serial build: every node reachable, recall within 0.01.
func TestConcurrentBuildRecall(t *testing.T) {
	const n, nq = 3000, 100
	vecs := synth.Clustered(n+nq, 64, 8, 1, 12)
	base, qs := vecs[:n], vecs[n:]
	serial := buildParallel(t, base, 12, 100, 1, nil)
	par := buildParallel(t, base, 12, 100, 4, nil)
	rs, rp := recallVsTruth(serial, base, qs, 10, 32), recallVsTruth(par, base, qs, 10, 32)
	t.Logf("recall@10 at ef 32: serial %.4f, 4 goroutines %.4f", rs, rp)
	if math.Abs(rs-rp) > 0.01 || rp < 0.95 {
		t.Errorf("parallel build recall %.4f vs serial %.4f", rp, rs)
	}
	for name, g := range map[string]*graph{"serial": serial, "parallel": par} {
		if r := reachable(g); r != n || g.count != n {
			t.Errorf("%s: %d of %d reachable (count %d)", name, r, n, g.count)
		}
		for i := range n {
			for lc := 0; lc <= int(g.levels[i]); lc++ {
				l := g.links(uint32(i), lc)
				for j, x := range l {
					if x == uint32(i) {
						t.Fatalf("%s: node %d links to itself", name, i)
					}
					for _, y := range l[:j] {
						if x == y {
							t.Fatalf("%s: node %d links twice to %d", name, i, x)
						}
					}
				}
			}
		}
	}
}
