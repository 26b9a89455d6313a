package rerank

import (
	"math"
	"slices"
)

// Query is a prepared k-reciprocal query: its V row and, for a query that is not a stored item,
// the rows of the items that change when it is placed among them.
type Query struct {
	row   []Entry
	self  uint32  // the stored item queried, or NoSlot
	patch *Patch  // an external query placed among the items (not applied)
	slot  uint32  // the external query's slot in patch
	scale float32 // the query's row scale: the final distance uses d/scale
}

// Row is the query's V row. Shared: do not modify.
func (q *Query) Row() []Entry { return q.row }

// ItemQuery queries by a stored item: its V row is used as it is.
func (st *State) ItemQuery(s uint32) *Query {
	if !st.Has(s) {
		return &Query{self: NoSlot}
	}
	return &Query{row: st.Row(s), self: s, scale: st.m[s]}
}

// ExternalQuery prepares a query that is not a stored item from its nearest items (ascending by
// distance; they should reach beyond K1, as the insertion beam of PlanAdd) and its distance to any
// item (dq); dist gives distances between stored items that their lists lack. The query is placed
// among the items as the paper places a probe, exactly as PlanAdd would add it, and Rank scores
// the rows that changes with their changed values; nothing is applied.
func (st *State) ExternalQuery(near []Neighbor, dq func(uint32) float32, dist Dist) *Query {
	qs := uint32(len(st.present))
	qdist := func(a, b uint32) float32 {
		switch {
		case a == qs:
			return dq(b)
		case b == qs:
			return dq(a)
		}
		return dist(a, b)
	}
	sc := st.getScratch()
	defer st.putScratch(sc)
	p := st.planAdd(sc, qs, near, qdist)
	return &Query{row: p.v[qs].new, self: NoSlot, patch: p, slot: qs, scale: p.m}
}

// overlap is sum_k min(a[k], b[k]) of two rows sorted by ID.
func overlap(a, b []Entry) float32 {
	var m float32
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i].ID < b[j].ID:
			i++
		case a[i].ID > b[j].ID:
			j++
		default:
			m += min(a[i].W, b[j].W)
			i++
			j++
		}
	}
	return m
}

// Ranked is one re-ranked result: the item, its original distance to the query and its final
// distance lambda*D + (1-lambda)*jaccard.
type Ranked struct {
	ID uint32
	D  float32
	F  float32
}

// Rank returns the k best items by final distance. base are the caller's nearest items for the
// query (ascending, already filtered: they stand for every item outside the query's postings, whose
// Jaccard distance is 1); every other item in the query's postings that accept admits (nil: all)
// is scored too, and dq gives its distance to the query. The queried item itself is never
// returned.
func (st *State) Rank(q *Query, base []Neighbor, k int, dq func(uint32) float32, accept func(uint32) bool) []Ranked {
	if k <= 0 {
		return nil
	}
	sc := st.getScratch()
	defer st.putScratch(sc)
	sc.reset(len(st.present))
	touched := sc.ids[:0]
	for _, e := range q.row {
		if int(e.ID) >= len(st.post) {
			continue
		}
		for _, pe := range st.post[e.ID] {
			if sc.mark(pe.ID) {
				sc.acc[pe.ID] = 0
				touched = append(touched, pe.ID)
			}
			sc.acc[pe.ID] += min(e.W, pe.W)
		}
	}
	if q.patch != nil {
		// Rows the query changes are scored from their new values, whatever the postings say.
		for g, r := range q.patch.v {
			if g == q.slot {
				continue
			}
			if sc.mark(g) {
				touched = append(touched, g)
			}
			sc.acc[g] = overlap(q.row, r.new)
		}
	}
	sc.ids = touched
	lam := st.p.Lambda
	lamd := lam // lambda over the query's row scale, for the original distance
	if q.scale > 0 {
		lamd = lam / q.scale
	}
	jac := func(g uint32) float32 {
		if !sc.marked(g) {
			return 1
		}
		m := sc.acc[g]
		return 1 - m/(2-m)
	}
	h := make(rankHeap, 0, k+1)
	for _, b := range base {
		if b.ID == q.self {
			continue
		}
		h.offer(Ranked{b.ID, b.D, lamd*b.D + (1-lam)*jac(b.ID)}, k)
		if sc.marked(b.ID) {
			sc.acc[b.ID] = float32(math.Inf(1)) // scored: skip below
		}
	}
	cands := sc.row[:0]
	for _, g := range touched {
		if a := sc.acc[g]; !math.IsInf(float64(a), 1) && g != q.self && (accept == nil || accept(g)) {
			cands = append(cands, Entry{g, 1 - a/(2-a)})
		}
	}
	sc.row = cands
	slices.SortFunc(cands, func(a, b Entry) int {
		switch {
		case a.W < b.W:
			return -1
		case a.W > b.W:
			return 1
		}
		return cmpU32(a.ID, b.ID)
	})
	for _, c := range cands {
		// The original distance is at least 0, so (1-lambda)*jaccard bounds the final one below.
		if len(h) == k && (1-lam)*c.W >= h[0].F {
			break
		}
		d := dq(c.ID)
		h.offer(Ranked{c.ID, d, lamd*d + (1-lam)*c.W}, k)
	}
	out := []Ranked(h)
	slices.SortFunc(out, cmpRanked)
	return out
}

func cmpRanked(a, b Ranked) int {
	switch {
	case a.F < b.F:
		return -1
	case a.F > b.F:
		return 1
	case a.D < b.D:
		return -1
	case a.D > b.D:
		return 1
	}
	return cmpU32(a.ID, b.ID)
}

// rankHeap keeps the k best (smallest F) with the worst on top.
type rankHeap []Ranked

func (h *rankHeap) offer(r Ranked, k int) {
	if len(*h) == k {
		if cmpRanked(r, (*h)[0]) >= 0 {
			return
		}
		(*h)[0] = r
		h.down(0)
		return
	}
	*h = append(*h, r)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if cmpRanked(a[i], a[p]) <= 0 {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h rankHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		j := l
		if r := l + 1; r < len(h) && cmpRanked(h[r], h[l]) > 0 {
			j = r
		}
		if cmpRanked(h[j], h[i]) <= 0 {
			return
		}
		h[i], h[j] = h[j], h[i]
		i = j
	}
}

func (st *State) getScratch() *scratch {
	if sc, ok := st.pool.Get().(*scratch); ok {
		return sc
	}
	return &scratch{}
}

func (st *State) putScratch(sc *scratch) { st.pool.Put(sc) }
