package rerank

import (
	"fmt"
	"slices"
)

// Verify checks the state's invariants: every list is sorted, at most K1 long and names other
// items; the reverse lists are the lists' transpose; and the rows and postings are what Rebuild
// computes from the lists (with the items' row scales as they are). It costs a rebuild; for tests
// and diagnostics.
func (st *State) Verify(dist Dist) error {
	fresh := &State{p: st.p}
	count := 0
	for s := range st.present {
		if !st.present[s] {
			if len(st.nb[s]) > 0 || len(st.v0[s]) > 0 || len(st.post[s]) > 0 || len(st.rev[s]) > 0 {
				return fmt.Errorf("rerank: slot %d is no item but keeps a list, row, postings or reverse links", s)
			}
			continue
		}
		count++
		l := st.nb[s]
		if len(l) > st.p.K1 || !slices.IsSortedFunc(l, cmpNeighbor) {
			return fmt.Errorf("rerank: list of %d unsorted or longer than %d: %v", s, st.p.K1, l)
		}
		for _, n := range l {
			if n.ID == uint32(s) || !st.Has(n.ID) {
				return fmt.Errorf("rerank: list of %d names %d (itself or no item)", s, n.ID)
			}
		}
		fresh.SetList(uint32(s), l)
	}
	if count != st.count {
		return fmt.Errorf("rerank: %d items counted, %d present", st.count, count)
	}
	fresh.grow(len(st.present))
	copy(fresh.m, st.m)
	fresh.ref = slices.Clone(st.ref)
	fresh.rebuild(dist, 1, false)
	for s := range fresh.present {
		if !fresh.present[s] {
			continue
		}
		if !sameMultiset(st.rev[s], fresh.rev[s]) {
			return fmt.Errorf("rerank: reverse list of %d is %v, the lists say %v", s, st.rev[s], fresh.rev[s])
		}
		if !slices.Equal(st.v0[s], fresh.v0[s]) {
			return fmt.Errorf("rerank: rows of %d differ from those of its lists", s)
		}
		a, b := slices.Clone(st.post[s]), slices.Clone(fresh.post[s])
		byID := func(x, y Entry) int { return cmpU32(x.ID, y.ID) }
		slices.SortFunc(a, byID)
		slices.SortFunc(b, byID)
		if !slices.Equal(a, b) {
			return fmt.Errorf("rerank: postings of %d differ from those of the rows", s)
		}
	}
	return nil
}

func sameMultiset(a, b []uint32) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
