package index

import (
	"math/rand"
	"slices"
	"testing"

	"github.com/lookalike/lookalike/internal/bench/synth"
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

// reachable counts the live nodes reachable from the entry point on layer 0.
func reachable(g *graph) int {
	entry, top := g.entryPoint()
	if top < 0 {
		return 0
	}
	seen := map[uint32]bool{entry: true}
	stack := []uint32{entry}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, x := range g.links(n, 0) {
			if g.levels[x] < 0 {
				panic("link to a free slot")
			}
			if !seen[x] {
				seen[x] = true
				stack = append(stack, x)
			}
		}
	}
	return len(seen)
}

// checkIn0 fails when a layer-0 in-link count differs from the number of lists holding the node:
// the counts decide which links pruning may drop (replaceLinks).
func checkIn0(t *testing.T, g *graph, when string) {
	t.Helper()
	want := make([]int32, len(g.levels))
	for i, l := range g.levels {
		if l >= 0 {
			for _, x := range g.links(uint32(i), 0) {
				want[x]++
			}
		}
	}
	for i := range want {
		if got := g.in0[i]; got != want[i] {
			t.Fatalf("%s: slot %d counted %d in-links, lists hold it %d times", when, i, got, want[i])
		}
	}
}

func TestGraphRecallSmall(t *testing.T) {
	vecs := synth.Clustered(3100, 128, 6, 1.0, 1)
	g := buildGraph(t, vecs[:3000], 16, 200)
	for _, ef := range []int{10, DefaultEfSearch} {
		r := recallAt(g, vecs[3000:], 10, ef, nil)
		t.Logf("ef=%d recall@10=%.4f levels=%d", ef, r, g.maxLevel()+1)
		if ef == DefaultEfSearch && r < 0.98 {
			t.Errorf("recall@10 = %.4f at ef %d", r, ef)
		}
	}
	if n := reachable(g); n != 3000 {
		t.Errorf("only %d of 3000 reachable", n)
	}
}

// TestGraphDeleteKeepsConnected deletes 40% of the nodes (including the
// entry point), reinserts some into freed slots, and checks that every live
// node is still reachable and recall holds.
func TestGraphDeleteKeepsConnected(t *testing.T) {
	n := 2000
	vecs := synth.Clustered(n+100, 64, 5, 1.0, 2)
	g := buildGraph(t, vecs[:n], 8, 100)
	rng := rand.New(rand.NewSource(3))
	entry, _ := g.entryPoint()
	deleted := map[uint32]bool{entry: true}
	for len(deleted) < n*4/10 {
		deleted[uint32(rng.Intn(n))] = true
	}
	for s := range deleted {
		g.applyDelete(g.planDelete(s))
	}
	if g.count != n-len(deleted) {
		t.Fatalf("count %d", g.count)
	}
	if r := reachable(g); r != g.count {
		t.Fatalf("after deletes %d of %d reachable", r, g.count)
	}
	checkIn0(t, g, "after deletes")
	// Reuse half the freed slots with new vectors.
	i := 0
	for s := range deleted {
		if i%2 == 0 {
			g.setVector(s, vecs[n+i%100])
			g.insert(s)
		}
		i++
	}
	if r := reachable(g); r != g.count {
		t.Fatalf("after reinsert %d of %d reachable", r, g.count)
	}
	checkIn0(t, g, "after reinsert")
	if r := recallAt(g, vecs[n:], 10, DefaultEfSearch, nil); r < 0.95 {
		t.Errorf("recall after deletes = %.4f", r)
	}
	// Delete everything: the graph becomes empty and usable again.
	for s := range g.levels {
		if g.levels[s] >= 0 {
			g.applyDelete(g.planDelete(uint32(s)))
		}
	}
	checkIn0(t, g, "emptied")
	if g.count != 0 || g.maxLevel() != -1 || len(g.search(vecs[0], 10, 10, nil)) != 0 {
		t.Fatalf("not empty: count %d maxLevel %d", g.count, g.maxLevel())
	}
	g.setVector(0, vecs[0])
	g.insert(0)
	if res := g.search(vecs[0], 1, 10, nil); len(res) != 1 || res[0].id != 0 {
		t.Fatal("cannot reuse emptied graph")
	}
}

// Deletes in several orders keep every live node reachable after each single delete: the repair
// must re-link a node whose only in-link was the deleted node, or a link the re-selection dropped.
// Orders 7 and 39 (of the same graph and deletion set as TestGraphDeleteKeepsConnected) orphaned a
// node before that repair.
func TestGraphDeleteOrdersKeepReachability(t *testing.T) {
	const n = 2000
	vecs := synth.Clustered(n+100, 64, 5, 1.0, 2)
	for _, seed := range []int64{7, 39, 1, 2} {
		g := buildGraph(t, vecs[:n], 8, 100)
		rng := rand.New(rand.NewSource(3))
		entry, _ := g.entryPoint()
		deleted := map[uint32]bool{entry: true}
		for len(deleted) < n*4/10 {
			deleted[uint32(rng.Intn(n))] = true
		}
		order := make([]uint32, 0, len(deleted))
		for s := range deleted {
			order = append(order, s)
		}
		slices.Sort(order)
		rand.New(rand.NewSource(seed)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for k, s := range order {
			g.applyDelete(g.planDelete(s))
			if r := reachable(g); r != g.count {
				t.Fatalf("order %d: after delete #%d (slot %d) %d of %d reachable", seed, k, s, r, g.count)
			}
		}
	}
}
