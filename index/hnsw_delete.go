package index

import "slices"

// Deleting a node: every list that links to it is re-selected over its
// remaining links plus the deleted node's (planDelete, under RLock, so
// searches go on), then the plan is applied at once (applyDelete, under Lock).

// linkUpdate replaces one node's links on one layer.
type linkUpdate struct {
	slot uint32
	lc   int
	ids  []uint32
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
	entry, top := g.entryPoint()
	p := deletePlan{slot: slot, entry: entry, maxLevel: top}
	lx := int(g.levels[slot])
	if lx < 0 {
		return p
	}
	s := g.getSearcher()
	defer g.putSearcher(s)
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
				g.prepareNode(&s.p2, n, &s.p2buf, false)
				cs := make([]cand, 0, len(cur)+len(mine))
				for _, c := range cur {
					if c != slot {
						cs = append(cs, cand{g.dist(&s.p2, c), c})
					}
				}
				for _, c := range mine {
					if c != n && !slices.Contains(cur, c) {
						cs = append(cs, cand{g.dist(&s.p2, c), c})
					}
				}
				slices.SortFunc(cs, cmpCand)
				kept := g.selectNeighbors(s, cs, mmax)
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
			g.adoptOrphan(s, &p, updated, indeg, x, slot, lc, mmax)
		}
		// A repaired node's re-selection can also drop a link that was another node's only
		// in-link.
		for _, x := range dropped {
			if indeg[x] == 0 {
				g.adoptOrphan(s, &p, updated, indeg, x, slot, lc, mmax)
			}
		}
	}
	if entry == slot {
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
func (g *graph) adoptOrphan(s *searcher, p *deletePlan, updated map[uint32]int, indeg []int32, x, slot uint32, lc, mmax int) {
	g.prepareNode(&s.p2, x, &s.p2buf, false)
	best, bestSim := uint32(0), float32(-2)
	consider := func(y uint32) {
		if y == x || y == slot || int(g.levels[y]) < lc {
			return
		}
		if sim := 1 - g.dist(&s.p2, y); sim > bestSim {
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
	if slices.Contains(list, x) {
		return // y already links to x (a list must not hold an id twice)
	}
	if len(list) < mmax {
		list = append(list, x)
	} else {
		g.prepareNode(&s.p2, y, &s.p2buf, false)
		drop, dropSim := -1, float32(2)
		for j, z := range list {
			if indeg[z] > 1 {
				if sim := 1 - g.dist(&s.p2, z); sim < dropSim {
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
	if p.maxLevel < 0 {
		g.top.Store(0)
	} else {
		g.setEntryPoint(p.entry, p.maxLevel)
	}
	g.count--
}
