package index

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Building the graph: Algorithm 1 of the paper, run by several goroutines at
// once the way hnswlib does. A node is first placed (vector stored, level
// drawn, upper lists allocated: under the owner's Lock, since it may grow the
// slabs), then linked: its searches read link lists with atomic loads, and
// each list it changes (its own, then each chosen neighbour's) is written
// under that node's stripe lock, one lock at a time. Unlike the paper's loop,
// every layer is searched before any is connected, and layers are connected
// bottom up (see link). An insert that may raise the top level holds topMu
// throughout, so the entry point only ever names a fully linked node.

// place makes slot a node of the given level whose vector is already stored,
// not yet linked. Under Lock.
func (g *graph) place(slot uint32, level int) {
	g.levels[slot] = int8(level)
	if level > 0 {
		g.upper[slot] = make([]uint32, level*(g.m+1))
	} else {
		g.upper[slot] = nil
	}
	g.setLinks(slot, 0, nil)
	g.count++
}

// insert places and links a slot whose vector is stored: the single-threaded
// path (tests, replay).
func (g *graph) insert(slot uint32) {
	g.place(slot, g.randomLevel())
	s := g.getSearcher()
	g.link(s, slot)
	g.putSearcher(s)
}

// link connects a placed node. Safe concurrently with other links and with
// searches (see graph). Its layer-0 beam (ascending) is left in s.w.
func (g *graph) link(s *searcher, slot uint32) {
	level := int(g.levels[slot])
	entry, top := g.entryPoint()
	if level > top {
		g.topMu.Lock()
		defer g.topMu.Unlock()
		if entry, top = g.entryPoint(); top < 0 {
			g.setEntryPoint(slot, level)
			s.w = s.w[:0]
			return
		}
		if level > top {
			// Raise the top only once the node is linked on every layer below.
			defer g.setEntryPoint(slot, level)
		}
	}
	s.newEpoch()
	g.prepareNode(&s.q, slot, &s.qbuf, true)
	ep := cand{g.dist(&s.q, entry), entry}
	for lc := top; lc > level; lc-- {
		ep = g.greedy(s, ep, lc)
	}
	// Every layer is searched first, top down (each beam seeds the next layer's search), and only
	// then connected, bottom up. A node becomes reachable on a layer when a neighbour links to it
	// there, and a search that reaches it continues from its lists on every layer below: connected
	// top down, a node linked on layer 1 but not yet on layer 0 was a dead end where a concurrent
	// search's descent could arrive, and that search returned the node alone (an exact duplicate
	// check missed its item: TestDuplicateChecksUnderChurn). Bottom up, a node's lists below a
	// layer are set before any node links to it on that layer.
	lo := min(level, top)
	for len(s.beams) <= lo {
		s.beams = append(s.beams, nil)
	}
	s.w = append(s.w[:0], ep)
	for lc := lo; lc >= 0; lc-- {
		s.newEpoch() // a fresh visited set per layer
		res := g.searchLayer(s, s.w, g.efc, lc, nil)
		// A concurrent insert may already link to slot: never a neighbour of itself.
		s.w = slices.DeleteFunc(append(s.w[:0], res...), func(c cand) bool { return c.id == slot })
		s.beams[lc] = append(s.beams[lc][:0], s.w...)
	}
	for lc := 0; lc <= lo; lc++ {
		g.connect(s, slot, lc, s.beams[lc])
		if lc == 0 && atomic.LoadInt32(&g.in0[slot]) == 0 {
			g.adopt(s, slot, s.beams[0])
		}
	}
}

// connect gives slot its neighbours on layer lc, chosen from w (ascending),
// and adds slot to each of theirs, pruning a full list with the heuristic.
func (g *graph) connect(s *searcher, slot uint32, lc int, w []cand) {
	mmax := g.m
	if lc == 0 {
		mmax = g.m0
	}
	// A copy: the pruning below reuses selectNeighbors' buffer.
	sel := append(s.chosen[:0], g.selectNeighbors(s, w, g.m)...)
	s.chosen = sel
	s.ids = s.ids[:0]
	for _, c := range sel {
		s.ids = append(s.ids, c.id)
	}
	g.lockNode(slot)
	if cur := g.neighbors(slot, lc, s.nb); len(cur) == 0 {
		g.setLinks(slot, lc, s.ids)
	} else {
		// Concurrent inserts linked to slot first: keep the best of both.
		s.cs = append(s.cs[:0], sel...)
		for _, n := range cur {
			if !slices.Contains(s.ids, n) {
				s.cs = append(s.cs, cand{g.dist(&s.q, n), n})
			}
		}
		slices.SortFunc(s.cs, cmpCand)
		g.replaceLinks(s, slot, lc, cur, g.selectNeighbors(s, s.cs, mmax), mmax)
	}
	g.unlockNode(slot)
	for i, e := range s.ids {
		g.lockNode(e)
		cur := g.neighbors(e, lc, s.nb)
		switch {
		case slices.Contains(cur, slot):
		case len(cur) < mmax:
			g.setLinks(e, lc, append(cur, slot))
		default:
			g.prepareNode(&s.p2, e, &s.p2buf, false)
			s.cs = append(s.cs[:0], cand{sel[i].d, slot})
			for _, n := range cur {
				s.cs = append(s.cs, cand{g.dist(&s.p2, n), n})
			}
			slices.SortFunc(s.cs, cmpCand)
			g.replaceLinks(s, e, lc, cur, g.selectNeighbors(s, s.cs, mmax), mmax)
		}
		g.unlockNode(e)
	}
}

// replaceLinks sets node n's list on layer lc (now old) to the pruned
// selection kept (ascending), under n's stripe lock. On layer 0 the
// heuristic must not drop a node's last in-link: a node no list holds is
// unreachable, and a search for its exact vector misses it (serial HNSW
// rarely orphans a node; concurrent inserts, each pruning with a partial
// view of the others, do). Such a node stays in the list, appended when
// there is room, else in place of the least similar kept node that another
// list also holds. Dropping takes a count only while it is above 1 (claim),
// so two lists pruned at once cannot both drop a node's last two in-links.
func (g *graph) replaceLinks(s *searcher, n uint32, lc int, old []uint32, kept []cand, mmax int) {
	s.ids2 = s.ids2[:0]
	for _, c := range kept {
		s.ids2 = append(s.ids2, c.id)
	}
	if lc > 0 {
		g.writeLinks(n, lc, s.ids2)
		return
	}
	for _, x := range s.ids2 {
		if !slices.Contains(old, x) {
			atomic.AddInt32(&g.in0[x], 1)
		}
	}
	for _, z := range old {
		if slices.Contains(s.ids2, z) || g.claim(z) {
			continue
		}
		if len(s.ids2) < mmax {
			s.ids2 = append(s.ids2, z)
			continue
		}
		kept := false
		for j := len(s.ids2) - 1; j >= 0; j-- {
			if g.claim(s.ids2[j]) {
				s.ids2[j] = z
				kept = true
				break
			}
		}
		if !kept {
			// Every node in the list has no other in-link: z goes (never seen in tests).
			atomic.AddInt32(&g.in0[z], -1)
		}
	}
	g.writeLinks(n, 0, s.ids2)
}

// claim takes one of x's layer-0 in-links, unless it is the last.
func (g *graph) claim(x uint32) bool {
	for {
		v := atomic.LoadInt32(&g.in0[x])
		if v <= 1 {
			return false
		}
		if atomic.CompareAndSwapInt32(&g.in0[x], v, v-1) {
			return true
		}
	}
}

// adopt gives a linked node that no layer-0 list holds an in-link: from the
// nearest node of its beam that has room, or in place of a link the beam node
// holds that another list also holds. Every one of the node's neighbours
// may have pruned it (each found a concurrently inserted node that is nearer).
func (g *graph) adopt(s *searcher, slot uint32, beam []cand) {
	for _, c := range beam {
		g.lockNode(c.id)
		cur := g.neighbors(c.id, 0, s.nb)
		done := slices.Contains(cur, slot)
		if !done && len(cur) < g.m0 {
			g.setLinks(c.id, 0, append(cur, slot))
			done = true
		}
		if !done {
			g.prepareNode(&s.p2, c.id, &s.p2buf, false)
			s.cs = s.cs[:0]
			for _, n := range cur {
				s.cs = append(s.cs, cand{g.dist(&s.p2, n), n})
			}
			slices.SortFunc(s.cs, cmpCand)
			for j := len(s.cs) - 1; j >= 0 && !done; j-- {
				if g.claim(s.cs[j].id) {
					i := slices.Index(cur, s.cs[j].id)
					cur[i] = slot
					atomic.AddInt32(&g.in0[slot], 1)
					g.writeLinks(c.id, 0, cur)
					done = true
				}
			}
		}
		g.unlockNode(c.id)
		if done {
			return
		}
	}
}

func (g *graph) lockNode(slot uint32)   { g.locks[slot%linkStripes].Lock() }
func (g *graph) unlockNode(slot uint32) { g.locks[slot%linkStripes].Unlock() }

// linkAll links placed nodes on up to workers goroutines (0: GOMAXPROCS),
// which it owns: it returns when they are done. beams, when not nil, receives
// each node's layer-0 beam (beams[i] for slots[i]: its nearest, ascending),
// completed with the nodes of slots that were still being linked when its own
// search began (see linkedBeside). It stops early, leaving the rest placed but
// unlinked, when ctx is done.
func (g *graph) linkAll(ctx context.Context, slots []uint32, workers int, beams [][]cand) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, len(slots)/64))
	var (
		mu      sync.Mutex
		next    int
		running []int
		beside  [][]int // beside[i]: the earlier nodes still linking when i was taken
		wg      sync.WaitGroup
	)
	if beams != nil && workers > 1 {
		beside = make([][]int, len(slots))
	}
	// take hands out the next node and notes which earlier ones are still linking: their
	// links may not be in the graph when this node's search runs.
	take := func() int {
		mu.Lock()
		defer mu.Unlock()
		i := next
		next++
		if i >= len(slots) || (i%256 == 0 && ctx.Err() != nil) {
			return -1
		}
		if beside != nil {
			beside[i] = slices.Clone(running)
			running = append(running, i)
		}
		return i
	}
	linked := func(i int) {
		mu.Lock()
		running = slices.DeleteFunc(running, func(j int) bool { return j == i })
		mu.Unlock()
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := g.getSearcher()
			defer g.putSearcher(s)
			for i := take(); i >= 0; i = take() {
				g.link(s, slots[i])
				if beams != nil {
					beams[i] = slices.Clone(s.w)
				}
				if beside != nil {
					linked(i)
				}
			}
		}()
	}
	wg.Wait()
	g.linkedBeside(slots, beams, beside)
	return ctx.Err()
}

// linkedBeside adds to each node's beam the earlier nodes of the same call that were still
// being linked when its search began, at their exact distance. Such a pair can miss each other:
// neither search need find the other, so neither would enter the other's re-ranking list,
// although the later one, listed after the earlier, must be able to. (Nodes taken later are
// listed later and find this one the same way.) A serial build never has such pairs.
func (g *graph) linkedBeside(slots []uint32, beams [][]cand, beside [][]int) {
	for i, js := range beside {
		if len(js) == 0 {
			continue
		}
		for _, j := range js {
			if !slices.ContainsFunc(beams[i], func(c cand) bool { return c.id == slots[j] }) {
				beams[i] = append(beams[i], cand{g.pairDist(slots[i], slots[j]), slots[j]})
			}
		}
		slices.SortFunc(beams[i], cmpCand)
	}
}
