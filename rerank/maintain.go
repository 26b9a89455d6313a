package rerank

import (
	"runtime"
	"slices"
)

// Patch is a planned change of State: new neighbour lists and the rows that change with them.
// It is valid only for the state it was planned on, until another patch is applied.
type Patch struct {
	lists map[uint32][]Neighbor // new lists (nil for the removed item)
	add   uint32                // the item added, or NoSlot
	m     float32               // the added item's row scale
	dist  Dist                  // for measuring the scales again in Apply (see State.scaledAt)
	del   uint32                // the item removed, or NoSlot
	v0    map[uint32]row0       // changed V0 rows (nil e for the removed item)
	v     map[uint32]rowChange  // changed V rows

	computed0, computed int
}

type row0 struct {
	e []Entry
	z float32
}

// rowChange is a V row before and after (nil: no item).
type rowChange struct{ old, new []Entry }

// Stats says how much a patch changes (lists, V0 rows and V rows) and how many of each kind of
// row planning computed.
type Stats struct{ Lists, Rows0, Rows, Computed0, Computed int }

// Stats of the patch.
func (p *Patch) Stats() Stats {
	return Stats{len(p.lists), len(p.v0), len(p.v), p.computed0, p.computed}
}

func newPatch() *Patch {
	return &Patch{lists: map[uint32][]Neighbor{}, add: NoSlot, del: NoSlot, v0: map[uint32]row0{}, v: map[uint32]rowChange{}}
}

// PlanAdd plans adding item x (not an item yet) whose nearest items are near (ascending by
// distance; absent items and x itself are skipped). x's list is the first K1 of near, and x
// enters the list of every item of near that it is closer to than that list's K1-th. near should
// reach well beyond K1 (an insertion beam): an item whose list x should enter but that is not in
// near keeps its list.
func (st *State) PlanAdd(x uint32, near []Neighbor, dist Dist) *Patch {
	return st.planAdd(&st.wsc, x, near, dist)
}

func (st *State) planAdd(sc *scratch, x uint32, near []Neighbor, dist Dist) *Patch {
	p := newPatch()
	if st.Has(x) {
		return p
	}
	p.add = x    // the state grows in Apply: planning runs beside readers and writes nothing
	if st.rows { // replayed before Rebuild: measured there, against the sample it picks
		p.m = st.rowScale(x, dist)
	}
	p.dist = dist
	w := &view{st: st, p: p}
	own := make([]Neighbor, 0, st.p.K1)
	for _, n := range near {
		if n.ID == x || !st.Has(n.ID) {
			continue
		}
		if len(own) < st.p.K1 {
			own = append(own, n)
		}
		l := st.nb[n.ID]
		at := Neighbor{x, n.D}
		if len(l) < st.p.K1 || cmpNeighbor(at, l[len(l)-1]) < 0 {
			i, _ := slices.BinarySearchFunc(l, at, cmpNeighbor)
			nl := make([]Neighbor, 0, min(len(l)+1, st.p.K1))
			nl = append(append(append(nl, l[:i]...), at), l[i:min(len(l), st.p.K1-1)]...)
			p.lists[n.ID] = nl
		}
	}
	slices.SortFunc(own, cmpNeighbor)
	p.lists[x] = own
	st.propagate(sc, w, p, dist)
	return p
}

// PlanRemove plans removing item x: every item whose list holds x gets a new list from research,
// which returns its nearest items (ascending; x, the item itself and absent items are skipped).
func (st *State) PlanRemove(x uint32, research func(y uint32) []Neighbor, dist Dist) *Patch {
	p := newPatch()
	if !st.Has(x) {
		return p
	}
	p.del = x
	w := &view{st: st, p: p}
	p.lists[x] = nil
	for _, y := range st.rev[x] {
		nl := make([]Neighbor, 0, st.p.K1)
		for _, n := range research(y) {
			if n.ID != x && n.ID != y && st.Has(n.ID) && len(nl) < st.p.K1 {
				nl = append(nl, n)
			}
		}
		slices.SortFunc(nl, cmpNeighbor)
		p.lists[y] = nl
	}
	st.propagate(&st.wsc, w, p, dist)
	return p
}

// propagate finds the rows that the planned lists change and recomputes them into p.
//
// V0[i] depends on R(i, K1) and on R(c, K1/2) of each member c of R(i, K1). Reciprocal sets are
// symmetric (c in R(i,k) iff i in R(c,k)), and R(a, k) can change only when a's list changes or a
// enters or leaves the top k of a changed list. So: find those items, compare their R(., K1) and
// R(., K1/2) before and after, and recompute V0 of every item whose R(., K1) changed and of every
// member of R(c, K1) (before or after) of an item c whose R(c, K1/2) changed. V[g] depends on the
// V0 rows of g and its K2-1 nearest, so it is recomputed when one of those rows or that prefix of
// g's list changes.
func (st *State) propagate(sc *scratch, w *view, p *Patch, dist Dist) {
	if !st.rows {
		return
	}
	base := &view{st: st}
	w.indexPatch(sc)
	for i := range st.dirtyRows0(base, w, p) {
		if !w.present(i) {
			if st.Has(i) {
				p.v0[i] = row0{}
			}
			continue
		}
		e, z := v0Row(w, st.p, sc, i, dist, w.scale(i))
		p.computed0++
		if !slices.Equal(e, base.row0(i)) || z != base.z(i) {
			p.v0[i] = row0{e, z}
		}
	}
	for g := range st.dirtyRows(w, p) {
		var old []Entry
		if st.Has(g) {
			old = vRow(base, st.p, sc, g)
		}
		if !w.present(g) {
			if old != nil {
				p.v[g] = rowChange{old, nil}
			}
			continue
		}
		r := vRow(w, st.p, sc, g)
		p.computed++
		if !slices.Equal(r, old) {
			p.v[g] = rowChange{old, r}
		}
	}
}

// dirtyRows0 returns the items whose V0 row the planned lists may change (see propagate).
func (st *State) dirtyRows0(base, w *view, p *Patch) map[uint32]bool {
	k1, kh := st.p.K1, st.p.half()
	// Items whose reciprocal sets may change: those with a new list, and those entering or
	// leaving the top K1 or K1/2 of one.
	var cands []uint32
	seen := map[uint32]bool{}
	addCand := func(s uint32) {
		if !seen[s] {
			seen[s] = true
			cands = append(cands, s)
		}
	}
	for s, nl := range p.lists {
		addCand(s)
		ol := base.list(s)
		for _, k := range []int{k1, kh} {
			for _, n := range ol[:min(k, len(ol))] {
				if !inTop(nl, n.ID, k) {
					addCand(n.ID)
				}
			}
			for _, n := range nl[:min(k, len(nl))] {
				if !inTop(ol, n.ID, k) {
					addCand(n.ID)
				}
			}
		}
	}
	dirty := map[uint32]bool{}
	var a, b []uint32
	r1 := map[uint32][2][]uint32{} // R(i, K1) before and after, sorted, for the expansion test
	recips := func(i uint32) [2][]uint32 {
		r, ok := r1[i]
		if !ok {
			r = [2][]uint32{recipOf(base, i, k1, nil), recipOf(w, i, k1, nil)}
			r1[i] = r
		}
		return r
	}
	for _, c := range cands {
		rc := recips(c)
		if !sameSet(rc[0], rc[1]) {
			dirty[c] = true
		}
		a = recipOf(base, c, kh, a[:0])
		b = recipOf(w, c, kh, b[:0])
		if sameSet(a, b) {
			continue
		}
		// R(c, K1/2) changed: it matters to V0[i] only where it was, or now is, part of i's
		// expansion (c in R(i, K1) and sharing more than 2/3 of its members with it).
		for _, members := range rc {
			for _, i := range members {
				if i == c || dirty[i] {
					continue
				}
				ri := recips(i)
				if expands(ri[0], c, a) || expands(ri[1], c, b) {
					dirty[i] = true
				}
			}
		}
	}
	return dirty
}

// dirtyRows returns the items whose V row changes: those whose V0 row changed (p.v0) or whose
// K2-1 prefix changed, and the items holding a changed V0 item in their prefix.
func (st *State) dirtyRows(w *view, p *Patch) map[uint32]bool {
	kq := st.p.K2 - 1
	dirty := map[uint32]bool{}
	for j := range p.v0 {
		dirty[j] = true
		if int(j) < len(st.rev) {
			for _, g := range st.rev[j] {
				if inTop(w.list(g), j, kq) {
					dirty[g] = true
				}
			}
		}
	}
	for g, nl := range p.lists {
		if !samePrefix(st.List(g), nl, kq) {
			dirty[g] = true
		}
		for j := range p.v0 {
			if inTop(nl, j, kq) {
				dirty[g] = true
			}
		}
	}
	return dirty
}

// expands reports whether the expansion of an item with k-reciprocal set r (sorted) takes in
// rc = R(c, K1/2) (sorted): c is in r and more than 2/3 of rc is.
func expands(r []uint32, c uint32, rc []uint32) bool {
	if _, ok := slices.BinarySearch(r, c); !ok {
		return false
	}
	in := 0
	for i, j := 0, 0; i < len(r) && j < len(rc); {
		switch {
		case r[i] < rc[j]:
			i++
		case r[i] > rc[j]:
			j++
		default:
			in++
			i++
			j++
		}
	}
	return 3*in > 2*len(rc)
}

// recipOf is recip for a present item, nothing for an absent one.
func recipOf(w *view, i uint32, k int, dst []uint32) []uint32 {
	if !w.present(i) {
		return dst
	}
	dst = recip(w, i, k, dst)
	slices.Sort(dst)
	return dst
}

func sameSet(a, b []uint32) bool { return slices.Equal(a, b) } // both sorted

func samePrefix(a, b []Neighbor, k int) bool {
	a, b = a[:min(k, len(a))], b[:min(k, len(b))]
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID {
			return false
		}
	}
	return true
}

// Apply installs a patch planned on the current state; a nil patch changes nothing.
func (st *State) Apply(p *Patch) {
	if p == nil {
		return
	}
	for s := range p.lists {
		st.grow(int(s) + 1)
	}
	if p.add != NoSlot {
		st.grow(int(p.add) + 1)
		st.present[p.add] = true
		st.count++
		st.m[p.add] = p.m
		if len(st.ref) < st.p.RowScale {
			st.ref = append(st.ref, p.add)
		}
	}
	for s, nl := range p.lists {
		ol := st.nb[s]
		for _, n := range ol {
			if !containsID(nl, n.ID) {
				st.rev[n.ID] = removeU32(st.rev[n.ID], s)
			}
		}
		for _, n := range nl {
			if !containsID(ol, n.ID) {
				st.rev[n.ID] = append(st.rev[n.ID], s)
			}
		}
		st.nb[s] = nl
	}
	for s, r := range p.v0 {
		st.v0[s], st.z[s] = r.e, r.z
	}
	for g, r := range p.v {
		st.setRow(g, r.old, r.new)
	}
	if p.del != NoSlot {
		st.present[p.del] = false
		st.count--
		st.nb[p.del], st.v0[p.del], st.z[p.del], st.m[p.del] = nil, nil, 0, 0
		st.ref = removeU32(st.ref, p.del)
	}
	if p.dist != nil && st.rows && st.rescaleDue() {
		st.rebuild(p.dist, runtime.GOMAXPROCS(0), true)
	}
}

// rescaleDue: the collection, smaller than the sample size when its scales were measured, has
// doubled since (or reached the sample size).
func (st *State) rescaleDue() bool {
	n := st.p.RowScale
	return n > 0 && st.scaledAt < n && st.count >= min(max(2*st.scaledAt, 16), n)
}

// setRow updates the postings (each sorted by item) by the difference of g's V row before (old)
// and after (r).
func (st *State) setRow(g uint32, old, r []Entry) {
	find := func(pl []Entry) (int, bool) {
		return slices.BinarySearchFunc(pl, g, func(e Entry, id uint32) int { return cmpU32(e.ID, id) })
	}
	i, j := 0, 0
	for i < len(old) || j < len(r) {
		switch {
		case j == len(r) || (i < len(old) && old[i].ID < r[j].ID):
			k := old[i].ID
			if at, ok := find(st.post[k]); ok {
				st.post[k] = slices.Delete(st.post[k], at, at+1)
			}
			i++
		case i == len(old) || r[j].ID < old[i].ID:
			k := r[j].ID
			at, _ := find(st.post[k])
			st.post[k] = slices.Insert(st.post[k], at, Entry{g, r[j].W})
			j++
		default:
			if old[i].W != r[j].W {
				if at, ok := find(st.post[r[j].ID]); ok {
					st.post[r[j].ID][at].W = r[j].W
				}
			}
			i++
			j++
		}
	}
}

func containsID(l []Neighbor, id uint32) bool {
	for _, n := range l {
		if n.ID == id {
			return true
		}
	}
	return false
}

// removeU32 deletes the first x from s, not keeping order.
func removeU32(s []uint32, x uint32) []uint32 {
	for i, v := range s {
		if v == x {
			s[i] = s[len(s)-1]
			return s[:len(s)-1]
		}
	}
	return s
}
