package index

import (
	"math"
	"math/rand"
	"slices"
	"sync"
)

// graph is the HNSW core (Malkov & Yashunin 2018) over unit vectors held in
// one contiguous slab, indexed by dense internal slots.
//
// Locking: graph has no lock of its own. Its owner (Collection) guarantees:
//   - at most one mutator at a time (Collection.wmu);
//   - read-only methods (search, exact, plan*) run under the owner's RLock;
//   - mutating methods (apply*, setVector, grow) run under the owner's Lock.
//
// Because mutators are serialised, a mutator may compute its change under
// RLock (concurrent with searches) and then apply it under a short Lock:
// nothing else can change the graph in between.
type graph struct {
	dim   int
	m, m0 int // max links per node on upper layers / layer 0
	efc   int
	ml    float64

	vecs   []float32  // slot*dim .. slot*dim+dim
	levels []int8     // -1: slot free or not linked yet
	links0 []uint32   // layer-0 links, stride m0+1: count, then ids
	upper  [][]uint32 // upper[slot]: layers 1..level, stride m+1 each

	entry    uint32
	maxLevel int // -1 when empty
	count    int

	rng  *rand.Rand
	pool sync.Pool // *searcher
}

func newGraph(dim, m, efc int, ml float64, seed int64) *graph {
	if m < 2 {
		m = 2
	}
	if ml <= 0 {
		ml = 1 / math.Log(float64(m))
	}
	return &graph{dim: dim, m: m, m0: 2 * m, efc: efc, ml: ml, maxLevel: -1, rng: rand.New(rand.NewSource(seed))}
}

// searcher holds per-search scratch memory, reused through graph.pool so that
// a search allocates nothing: visited is an epoch-stamped array (a slot is
// visited when marks[slot] == epoch), so clearing it is one increment.
type searcher struct {
	marks []uint32
	epoch uint32
	cands minHeap
	res   maxHeap
	out   []cand
}

func (g *graph) getSearcher() *searcher {
	s, _ := g.pool.Get().(*searcher)
	if s == nil {
		s = &searcher{}
	}
	n := len(g.levels)
	if len(s.marks) < n {
		s.marks = make([]uint32, n+n/4+16)
		s.epoch = 0
	}
	s.epoch++
	if s.epoch == 0 { // wrapped: stale marks could alias the new epoch
		clear(s.marks)
		s.epoch = 1
	}
	return s
}

func (g *graph) putSearcher(s *searcher) { g.pool.Put(s) }

func (g *graph) vec(slot uint32) []float32 {
	o := int(slot) * g.dim
	return g.vecs[o : o+g.dim : o+g.dim]
}

func (g *graph) dist(q []float32, slot uint32) float32 { return 1 - dot(q, g.vec(slot)) }

func (g *graph) links(slot uint32, lc int) []uint32 {
	if lc == 0 {
		o := int(slot) * (g.m0 + 1)
		n := int(g.links0[o])
		return g.links0[o+1 : o+1+n]
	}
	u := g.upper[slot]
	o := (lc - 1) * (g.m + 1)
	n := int(u[o])
	return u[o+1 : o+1+n]
}

func (g *graph) setLinks(slot uint32, lc int, ids []uint32) {
	if lc == 0 {
		o := int(slot) * (g.m0 + 1)
		g.links0[o] = uint32(copy(g.links0[o+1:o+1+g.m0], ids))
		return
	}
	u := g.upper[slot]
	o := (lc - 1) * (g.m + 1)
	u[o] = uint32(copy(u[o+1:o+1+g.m], ids))
}

// grow makes room for slot n-1. Under Lock.
func (g *graph) grow(n int) {
	if n <= len(g.levels) {
		return
	}
	old := len(g.levels)
	c := max(n, 2*len(g.levels), 64)
	if n > cap(g.levels) {
		g.levels = slices.Grow(g.levels[:old], c-old)
	}
	if n > cap(g.upper) {
		g.upper = slices.Grow(g.upper[:old], c-old)
	}
	if n*g.dim > cap(g.vecs) {
		g.vecs = slices.Grow(g.vecs[:old*g.dim], (c-old)*g.dim)
	}
	if n*(g.m0+1) > cap(g.links0) {
		g.links0 = slices.Grow(g.links0[:old*(g.m0+1)], (c-old)*(g.m0+1))
	}
	g.levels = g.levels[:n]
	g.upper = g.upper[:n]
	g.vecs = g.vecs[:n*g.dim]
	g.links0 = g.links0[:n*(g.m0+1)]
	for i := old; i < n; i++ {
		g.levels[i] = -1
		g.upper[i] = nil
	}
	clear(g.vecs[old*g.dim:])
	clear(g.links0[old*(g.m0+1):])
}

// reserve preallocates room for n slots (load path: avoids regrowing a
// multi-GiB slab).
func (g *graph) reserve(n int) {
	if n <= cap(g.levels) {
		return
	}
	l := len(g.levels)
	g.levels = slices.Grow(g.levels, n-l)
	g.upper = slices.Grow(g.upper, n-l)
	g.vecs = slices.Grow(g.vecs, (n-l)*g.dim)
	g.links0 = slices.Grow(g.links0, (n-l)*(g.m0+1))
}

// setVector stores an already normalised vector. Under Lock, slot unlinked.
func (g *graph) setVector(slot uint32, v []float32) {
	g.grow(int(slot) + 1)
	copy(g.vec(slot), v)
}

// MaxLevel is the highest layer a node is given. With the default ml
// (1/ln M, M 16) a level above 16 has probability 16^-17, so the cap only
// guards against a tiny random draw; it also keeps levels within the int8 of
// the snapshot format.
const MaxLevel = 16

func (g *graph) randomLevel() int {
	u := g.rng.Float64()
	for u == 0 {
		u = g.rng.Float64()
	}
	l := int(math.Floor(-math.Log(u) * g.ml))
	return min(l, MaxLevel)
}

// greedy is the ef=1 descent used on the upper layers.
func (g *graph) greedy(q []float32, ep cand, lc int) cand {
	for changed := true; changed; {
		changed = false
		for _, n := range g.links(ep.id, lc) {
			if d := g.dist(q, n); d < ep.d {
				ep = cand{d, n}
				changed = true
			}
		}
	}
	return ep
}

// searchLayer is Algorithm 2: a beam search whose result set is bounded by
// ef, stopping when the nearest unexpanded candidate is further than the
// furthest result. Nodes rejected by accept are traversed but never returned.
// The result is s.out, ascending, valid until s is reused.
func (g *graph) searchLayer(s *searcher, q []float32, eps []cand, ef, lc int, accept func(uint32) bool) []cand {
	s.cands = s.cands[:0]
	s.res = s.res[:0]
	marks, epoch := s.marks, s.epoch
	for _, e := range eps {
		if marks[e.id] == epoch {
			continue
		}
		marks[e.id] = epoch
		s.cands.push(e)
		if accept == nil || accept(e.id) {
			s.res.push(e)
			if len(s.res) > ef {
				s.res.pop()
			}
		}
	}
	for len(s.cands) > 0 {
		c := s.cands.pop()
		if len(s.res) >= ef && c.d > s.res.worst() {
			break
		}
		for _, n := range g.links(c.id, lc) {
			if marks[n] == epoch {
				continue
			}
			marks[n] = epoch
			d := g.dist(q, n)
			if len(s.res) < ef || d < s.res.worst() {
				s.cands.push(cand{d, n})
				if accept == nil || accept(n) {
					s.res.push(cand{d, n})
					if len(s.res) > ef {
						s.res.pop()
					}
				}
			}
		}
	}
	s.out = s.res.sortedAsc(s.out)
	return s.out
}

// selectNeighbors is Algorithm 4 without extendCandidates or
// keepPrunedConnections (as hnswlib): walk candidates nearest first and keep
// one only if it is closer to the base than to every neighbour kept so far.
// cs must be ascending by distance to the base.
func (g *graph) selectNeighbors(cs []cand, m int) []cand {
	if len(cs) <= m {
		return cs
	}
	out := make([]cand, 0, m)
	for _, c := range cs {
		if len(out) >= m {
			break
		}
		vc := g.vec(c.id)
		good := true
		for _, o := range out {
			if 1-dot(vc, g.vec(o.id)) < c.d {
				good = false
				break
			}
		}
		if good {
			out = append(out, c)
		}
	}
	return out
}

// search is k-NN: greedy descent on the upper layers, then a beam of width
// max(ef,k) on layer 0. Under RLock.
func (g *graph) search(q []float32, k, ef int, accept func(uint32) bool) []cand {
	if g.maxLevel < 0 || k <= 0 {
		return nil
	}
	ep := cand{g.dist(q, g.entry), g.entry}
	for lc := g.maxLevel; lc > 0; lc-- {
		ep = g.greedy(q, ep, lc)
	}
	s := g.getSearcher()
	res := g.searchLayer(s, q, []cand{ep}, max(ef, k), 0, accept)
	if len(res) > k {
		res = res[:k]
	}
	out := slices.Clone(res)
	g.putSearcher(s)
	return out
}

// exact is brute force over every linked slot (or over slots when non-nil).
func (g *graph) exact(q []float32, k int, slots []uint32, accept func(uint32) bool) []cand {
	if k <= 0 {
		return nil
	}
	h := make(maxHeap, 0, k+1)
	try := func(i uint32) {
		if g.levels[i] < 0 || (accept != nil && !accept(i)) {
			return
		}
		d := g.dist(q, i)
		if len(h) < k {
			h.push(cand{d, i})
		} else if d < h.worst() {
			h.push(cand{d, i})
			h.pop()
		}
	}
	if slots != nil {
		for _, i := range slots {
			if int(i) < len(g.levels) {
				try(i)
			}
		}
	} else {
		for i := range g.levels {
			try(uint32(i))
		}
	}
	return h.sortedAsc(nil)
}

// linkUpdate replaces one node's links on one layer.
type linkUpdate struct {
	slot uint32
	lc   int
	ids  []uint32
}

// insertPlan is Algorithm 1 computed without mutating the graph.
type insertPlan struct {
	slot    uint32
	level   int
	own     [][]uint32 // own[lc] for lc <= min(level, maxLevel)
	updates []linkUpdate
	near    []cand // the layer-0 beam (ascending): the node's nearest, for the re-ranking lists
}

// planInsert runs Algorithm 1's searches for a slot whose vector is already
// in the slab but which is not linked. Under RLock (and the mutator lock).
func (g *graph) planInsert(slot uint32, level int) insertPlan {
	p := insertPlan{slot: slot, level: level}
	if g.maxLevel < 0 {
		return p
	}
	q := g.vec(slot)
	ep := cand{g.dist(q, g.entry), g.entry}
	for lc := g.maxLevel; lc > level; lc-- {
		ep = g.greedy(q, ep, lc)
	}
	top := min(level, g.maxLevel)
	p.own = make([][]uint32, top+1)
	s := g.getSearcher()
	defer g.putSearcher(s)
	eps := []cand{ep}
	for lc := top; lc >= 0; lc-- {
		if lc != top {
			s.epoch++ // fresh visited set per layer
			if s.epoch == 0 {
				clear(s.marks)
				s.epoch = 1
			}
		}
		w := slices.Clone(g.searchLayer(s, q, eps, g.efc, lc, nil))
		mmax := g.m
		if lc == 0 {
			mmax = g.m0
		}
		sel := g.selectNeighbors(w, g.m)
		ids := make([]uint32, len(sel))
		for i, c := range sel {
			ids[i] = c.id
		}
		p.own[lc] = ids
		if lc == 0 {
			p.near = w
		}
		for _, e := range sel {
			cur := g.links(e.id, lc)
			var nl []uint32
			if len(cur) < mmax {
				nl = append(slices.Clone(cur), slot)
			} else {
				ve := g.vec(e.id)
				cs := make([]cand, 0, len(cur)+1)
				cs = append(cs, cand{e.d, slot})
				for _, n := range cur {
					cs = append(cs, cand{1 - dot(ve, g.vec(n)), n})
				}
				slices.SortFunc(cs, cmpCand)
				kept := g.selectNeighbors(cs, mmax)
				nl = make([]uint32, len(kept))
				for i, c := range kept {
					nl[i] = c.id
				}
			}
			p.updates = append(p.updates, linkUpdate{e.id, lc, nl})
		}
		eps = w
	}
	return p
}

func cmpCand(a, b cand) int {
	switch {
	case a.d < b.d:
		return -1
	case a.d > b.d:
		return 1
	}
	return int(a.id) - int(b.id)
}

// applyInsert links a planned node. Under Lock.
func (g *graph) applyInsert(p insertPlan) {
	g.levels[p.slot] = int8(p.level)
	if p.level > 0 {
		g.upper[p.slot] = make([]uint32, p.level*(g.m+1))
	} else {
		g.upper[p.slot] = nil
	}
	g.setLinks(p.slot, 0, nil)
	for lc, ids := range p.own {
		g.setLinks(p.slot, lc, ids)
	}
	for _, u := range p.updates {
		g.setLinks(u.slot, u.lc, u.ids)
	}
	if g.maxLevel < 0 || p.level > g.maxLevel {
		g.entry = p.slot
		g.maxLevel = p.level
	}
	g.count++
}

// insert is planInsert+applyInsert for single-threaded callers (build, bench).
func (g *graph) insert(slot uint32) {
	g.applyInsert(g.planInsert(slot, g.randomLevel()))
}

// deletePlan unlinks a node and repairs every node that linked to it.
type deletePlan struct {
	slot     uint32
	updates  []linkUpdate
	entry    uint32
	maxLevel int
}

// planDelete finds, per layer, every node with a link to slot and
// recomputes its links with the heuristic over its remaining links plus the
// deleted node's links, so the graph stays connected. Under RLock.
func (g *graph) planDelete(slot uint32) deletePlan {
	p := deletePlan{slot: slot, entry: g.entry, maxLevel: g.maxLevel}
	lx := int(g.levels[slot])
	if lx < 0 {
		return p
	}
	for lc := 0; lc <= lx; lc++ {
		mine := g.links(slot, lc)
		mmax := g.m
		if lc == 0 {
			mmax = g.m0
		}
		// indeg counts the in-links every node keeps after the repair, so an out-neighbour of the
		// deleted node that the heuristic left without any (its only in-link was the deleted
		// node) can be given one below: otherwise it would be unreachable.
		indeg := make([]int32, len(g.levels))
		updated := map[uint32]int{} // node → index in p.updates
		var dropped []uint32        // links the re-selection took from repaired nodes
		for i := range g.levels {
			n := uint32(i)
			if n == slot || int(g.levels[i]) < lc {
				continue
			}
			final := g.links(n, lc)
			if slices.Contains(final, slot) {
				cur := final
				vn := g.vec(n)
				cs := make([]cand, 0, len(cur)+len(mine))
				for _, c := range cur {
					if c != slot {
						cs = append(cs, cand{1 - dot(vn, g.vec(c)), c})
					}
				}
				for _, c := range mine {
					if c != n && !slices.Contains(cur, c) {
						cs = append(cs, cand{1 - dot(vn, g.vec(c)), c})
					}
				}
				slices.SortFunc(cs, cmpCand)
				kept := g.selectNeighbors(cs, mmax)
				ids := make([]uint32, len(kept))
				for j, c := range kept {
					ids[j] = c.id
				}
				updated[n] = len(p.updates)
				p.updates = append(p.updates, linkUpdate{n, lc, ids})
				for _, c := range cur {
					if c != slot && !slices.Contains(ids, c) {
						dropped = append(dropped, c)
					}
				}
				final = ids
			}
			for _, c := range final {
				indeg[c]++
			}
		}
		// Every path n → slot → x must survive as a path around the deleted node: an out-neighbour
		// that no repaired in-neighbour links to (the heuristic pruned it everywhere) is adopted by
		// the most similar one. In-degree alone is not enough: x can keep in-links from its own
		// cluster while the cluster loses its only link from the rest of the graph.
		for _, x := range mine {
			if x == slot || int(g.levels[x]) < lc || linkedFromAny(p.updates, updated, x) {
				continue
			}
			g.adoptOrphan(&p, updated, indeg, x, slot, lc, mmax)
		}
		// A repaired node's re-selection can also drop a link that was another node's only
		// in-link.
		for _, x := range dropped {
			if indeg[x] == 0 {
				g.adoptOrphan(&p, updated, indeg, x, slot, lc, mmax)
			}
		}
	}
	if g.entry == slot {
		p.maxLevel = -1
		for i, l := range g.levels {
			if uint32(i) != slot && int(l) > p.maxLevel {
				p.maxLevel = int(l)
				p.entry = uint32(i)
			}
		}
	}
	return p
}

func linkedFromAny(updates []linkUpdate, updated map[uint32]int, x uint32) bool {
	for _, i := range updated {
		if slices.Contains(updates[i].ids, x) {
			return true
		}
	}
	return false
}

// adoptOrphan links x from its most similar live neighbour y (among the nodes the delete repairs,
// else x's own links): appended when y has room, else replacing y's least similar link that has
// another in-link, so no node is orphaned in exchange. Under RLock.
func (g *graph) adoptOrphan(p *deletePlan, updated map[uint32]int, indeg []int32, x, slot uint32, lc, mmax int) {
	vx := g.vec(x)
	best, bestSim := uint32(0), float32(-2)
	consider := func(y uint32) {
		if y == x || y == slot || int(g.levels[y]) < lc {
			return
		}
		if sim := dot(vx, g.vec(y)); sim > bestSim {
			best, bestSim = y, sim
		}
	}
	for y := range updated {
		consider(y)
	}
	if bestSim == -2 {
		for _, y := range g.links(x, lc) {
			consider(y)
		}
	}
	if bestSim == -2 {
		return // x is the only node left on this layer
	}
	y := best
	var list []uint32
	if i, ok := updated[y]; ok {
		list = p.updates[i].ids
	} else {
		list = slices.Clone(g.links(y, lc))
	}
	if len(list) < mmax {
		list = append(list, x)
	} else {
		vy := g.vec(y)
		drop, dropSim := -1, float32(2)
		for j, z := range list {
			if indeg[z] > 1 {
				if sim := dot(vy, g.vec(z)); sim < dropSim {
					drop, dropSim = j, sim
				}
			}
		}
		if drop < 0 {
			return
		}
		indeg[list[drop]]--
		list = slices.Clone(list)
		list[drop] = x
	}
	indeg[x]++
	if i, ok := updated[y]; ok {
		p.updates[i].ids = list
	} else {
		updated[y] = len(p.updates)
		p.updates = append(p.updates, linkUpdate{y, lc, list})
	}
}

// applyDelete unlinks the node and frees its slot. Under Lock.
func (g *graph) applyDelete(p deletePlan) {
	if g.levels[p.slot] < 0 {
		return
	}
	for _, u := range p.updates {
		g.setLinks(u.slot, u.lc, u.ids)
	}
	g.setLinks(p.slot, 0, nil)
	g.levels[p.slot] = -1
	g.upper[p.slot] = nil
	g.entry, g.maxLevel = p.entry, p.maxLevel
	g.count--
}
