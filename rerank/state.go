package rerank

import (
	"math"
	"slices"
	"sync"
)

// Neighbor is an item and its distance (1 - cosine) to another item or a query.
type Neighbor struct {
	ID uint32
	D  float32
}

// Entry is one element of a sparse row.
type Entry struct {
	ID uint32
	W  float32
}

// NoSlot marks "no item".
const NoSlot = ^uint32(0)

// Dist returns the distance (1 - cosine) between two stored items.
type Dist func(a, b uint32) float32

// State is the re-ranking state of one collection; see the package comment.
type State struct {
	p       Params
	present []bool
	count   int
	nb      [][]Neighbor // ascending by (D, ID), at most K1
	rev     [][]uint32   // rev[m]: the items whose list holds m
	v0      [][]Entry    // k-reciprocal rows, by ID
	z       []float32    // sum of a V0 row's weights before normalisation
	// m is each item's row scale (Params.RowScale; 1 when it is 0), fixed when the item is added
	// or the state rebuilt; ref is the sample the scales are measured against.
	m   []float32
	ref []uint32
	// scaledAt is the item count when every scale was last measured (Rebuild): while the
	// collection is smaller than RowScale the sample is all of it and still growing, so Apply
	// measures them all again each time the count doubles, up to RowScale.
	scaledAt int
	// post[k]: (g, V[g,k]) for every g whose V row holds k, by g. The V rows themselves (V0
	// averaged over an item and its K2-1 nearest) are not kept: a merge of K2 V0 rows makes one.
	post [][]Entry
	// rows says the rows and postings are current. SetList clears it, Rebuild sets it; without
	// them planning changes the lists only (replaying writes before the first Rebuild).
	rows bool

	wsc  scratch   // the writer's scratch (Plan* run one at a time)
	pool sync.Pool // *scratch for Rank
}

// New returns an empty state; p is checked (ErrParams).
func New(p Params) (*State, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return &State{p: p, rows: true}, nil
}

// NewDefault returns an empty state with DefaultParams.
func NewDefault() *State { return &State{p: DefaultParams(), rows: true} }

// Params returns the parameters.
func (st *State) Params() Params { return st.p }

// Len is the number of items.
func (st *State) Len() int { return st.count }

// Has reports whether slot is an item.
func (st *State) Has(s uint32) bool { return int(s) < len(st.present) && st.present[s] }

// Scale is an item's row scale (Params.RowScale; 0 for no item or one not measured yet).
func (st *State) Scale(s uint32) float32 {
	if st.Has(s) {
		return st.m[s]
	}
	return 0
}

// SetScale gives an item set by SetList its row scale, for loading (Rebuild measures the
// others); a scale outside (0, 2] (1 - cosine of unit vectors) is ignored.
func (st *State) SetScale(s uint32, m float32) {
	if st.Has(s) && m > 0 && m <= 2 {
		st.m[s] = m
	}
}

// List returns an item's neighbour list (shared: do not modify).
func (st *State) List(s uint32) []Neighbor {
	if int(s) < len(st.nb) {
		return st.nb[s]
	}
	return nil
}

// Row computes an item's V row (nil for no item).
func (st *State) Row(s uint32) []Entry {
	if !st.Has(s) {
		return nil
	}
	sc := st.getScratch()
	defer st.putScratch(sc)
	return vRow(&view{st: st}, st.p, sc, s)
}

// Footprint is what the state holds: items, mean entries per V0 and V row, and an estimate of the
// memory of the lists, reverse lists, rows and postings (slice capacities and headers).
type Footprint struct {
	Items             int
	MeanRow0, MeanRow float64
	Bytes             int64
}

// Footprint measures the state.
func (st *State) Footprint() Footprint {
	const hdr = 24 // a slice header
	f := Footprint{Items: st.count, Bytes: int64(hdr*4+4+1) * int64(len(st.present))}
	var r0, r int
	for s := range st.present {
		f.Bytes += int64(8*cap(st.nb[s]) + 4*cap(st.rev[s]) + 8*cap(st.v0[s]) + 8*cap(st.post[s]))
		r0 += len(st.v0[s])
		r += len(st.post[s]) // every V row entry is one posting
	}
	if st.count > 0 {
		f.MeanRow0, f.MeanRow = float64(r0)/float64(st.count), float64(r)/float64(st.count)
	}
	return f
}

// Slots is one past the highest slot the state has room for.
func (st *State) Slots() int { return len(st.present) }

func (st *State) grow(n int) {
	if n <= len(st.present) {
		return
	}
	k := max(n, len(st.present)+len(st.present)/4) - len(st.present)
	st.present = append(st.present, make([]bool, k)...)
	st.nb = append(st.nb, make([][]Neighbor, k)...)
	st.rev = append(st.rev, make([][]uint32, k)...)
	st.v0 = append(st.v0, make([][]Entry, k)...)
	st.z = append(st.z, make([]float32, k)...)
	st.m = append(st.m, make([]float32, k)...)
	st.post = append(st.post, make([][]Entry, k)...)
}

// ---- bulk load ----

// SetList installs an item with its neighbour list (ascending, at most K1, naming items that are
// or will be set), for loading. Until Rebuild, PlanAdd and PlanRemove change only the lists (as
// replaying writes after a snapshot does), and Rank must not be used.
func (st *State) SetList(s uint32, list []Neighbor) {
	st.grow(int(s) + 1)
	if !st.present[s] {
		st.present[s] = true
		st.count++
	}
	for _, n := range st.nb[s] {
		st.rev[n.ID] = removeU32(st.rev[n.ID], s)
	}
	st.nb[s] = slices.Clone(list[:min(len(list), st.p.K1)])
	for _, n := range st.nb[s] {
		st.grow(int(n.ID) + 1)
		st.rev[n.ID] = append(st.rev[n.ID], s)
	}
	st.rows = false
}

// Rebuild recomputes the reverse lists, rows and postings from the lists, using up to workers
// goroutines (it waits for them). Lists naming absent items are cut first. With RowScale it
// samples the items anew and measures the row scale of every item that has none (SetScale gives
// them when loading: measuring costs RowScale distances per item), or of every item when there
// are fewer than RowScale (the sample is then the whole collection).
func (st *State) Rebuild(dist Dist, workers int) {
	st.rebuild(dist, workers, st.count < st.p.RowScale)
}

// rebuild is Rebuild; all measures every scale anew (else only the missing ones).
func (st *State) rebuild(dist Dist, workers int, all bool) {
	st.rows = true
	if all {
		clear(st.m)
	}
	st.scaledAt = st.count
	for s := range st.present {
		st.rev[s], st.v0[s], st.post[s] = nil, nil, nil
	}
	for s := range st.present {
		if !st.present[s] {
			st.nb[s] = nil
			continue
		}
		st.nb[s] = slices.DeleteFunc(st.nb[s], func(n Neighbor) bool { return !st.Has(n.ID) || n.ID == uint32(s) })
		for _, n := range st.nb[s] {
			st.rev[n.ID] = append(st.rev[n.ID], uint32(s))
		}
	}
	st.pickRef()
	st.parallel(workers, func(_ *scratch, s uint32) {
		if !(st.m[s] > 0) {
			st.m[s] = st.rowScale(s, dist)
		}
	})
	w := &view{st: st}
	st.parallel(workers, func(sc *scratch, s uint32) {
		st.v0[s], st.z[s] = v0Row(w, st.p, sc, s, dist, st.m[s])
	})
	rows := make([][]Entry, len(st.present))
	st.parallel(workers, func(sc *scratch, s uint32) {
		rows[s] = vRow(w, st.p, sc, s)
	})
	for s, row := range rows {
		for _, e := range row {
			st.post[e.ID] = append(st.post[e.ID], Entry{uint32(s), e.W})
		}
	}
}

// pickRef samples the items the row scales are measured against: all of them up to RowScale,
// else RowScale spread evenly over the slots. Between rebuilds the sample only loses deleted
// items and gains added ones while it is short, and each item keeps the scale it was given (the
// authors' code ranks a fixed set; a growing one is rescaled by the next Rebuild, as at Open).
func (st *State) pickRef() {
	st.ref = st.ref[:0]
	n := st.p.RowScale
	if n == 0 {
		return
	}
	step := max(1, float64(st.count)/float64(n))
	i, next := 0, 0.0
	for s, ok := range st.present {
		if !ok {
			continue
		}
		if float64(i) >= next && len(st.ref) < n {
			st.ref = append(st.ref, uint32(s))
			next += step
		}
		i++
	}
}

// rowScale is item (or planned query) i's largest distance to the sample, 1 without RowScale
// or when the sample is empty or i's distances to it are all 0.
func (st *State) rowScale(i uint32, dist Dist) float32 {
	var m float32
	if st.p.RowScale > 0 {
		for _, r := range st.ref {
			if r != i {
				m = max(m, dist(i, r))
			}
		}
	}
	if !(m > 0) {
		return 1
	}
	return m
}

// parallel runs f for every item on up to workers goroutines.
func (st *State) parallel(workers int, f func(*scratch, uint32)) {
	workers = max(1, min(workers, len(st.present)/256+1))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := &scratch{}
			for s := w; s < len(st.present); s += workers {
				if st.present[s] {
					f(sc, uint32(s))
				}
			}
		}()
	}
	wg.Wait()
}

// ---- scratch ----

// scratch is reusable per-caller memory: epoch-stamped marks (a slot is marked when
// marks[slot] == epoch, so clearing is one increment) and a dense accumulator.
type scratch struct {
	marks   []uint32
	epoch   uint32
	acc     []float32
	ids     []uint32
	ov      []uint32 // view.ov
	ovEpoch uint32
	r1      []uint32
	rc      []uint32
	set     []uint32
	row     []Entry
	tmp     []Entry
}

// reset starts a new mark generation over n slots.
func (sc *scratch) reset(n int) {
	if len(sc.marks) < n {
		sc.marks = make([]uint32, n+n/4+64)
		sc.acc = make([]float32, len(sc.marks))
		sc.epoch = 0
	}
	sc.epoch++
	if sc.epoch == 0 {
		clear(sc.marks)
		sc.epoch = 1
	}
}

func (sc *scratch) mark(s uint32) bool {
	if sc.marks[s] == sc.epoch {
		return false
	}
	sc.marks[s] = sc.epoch
	return true
}

func (sc *scratch) marked(s uint32) bool { return sc.marks[s] == sc.epoch }

// ---- rows ----

// lister reads neighbour lists and V0 rows: the state itself, the state overlaid by a plan, or
// the state with an external query placed in it.
type lister interface {
	list(s uint32) []Neighbor
	row0(s uint32) []Entry
	slots() int
}

// view is the state, optionally overlaid by a patch being planned.
type view struct {
	st *State
	p  *Patch
	// ov marks the slots with a planned list (ov[s] == ovEpoch), so that most lookups skip the map.
	ov      []uint32
	ovEpoch uint32
}

// indexPatch marks the patch's lists in sc for fast lookups.
func (w *view) indexPatch(sc *scratch) {
	n := w.slots()
	if len(sc.ov) < n {
		sc.ov = make([]uint32, n+n/4+64)
		sc.ovEpoch = 0
	}
	sc.ovEpoch++
	if sc.ovEpoch == 0 {
		clear(sc.ov)
		sc.ovEpoch = 1
	}
	for s := range w.p.lists {
		sc.ov[s] = sc.ovEpoch
	}
	w.ov, w.ovEpoch = sc.ov, sc.ovEpoch
}

func (w *view) list(s uint32) []Neighbor {
	if w.p != nil && (w.ov == nil || (int(s) < len(w.ov) && w.ov[s] == w.ovEpoch)) {
		if l, ok := w.p.lists[s]; ok {
			return l
		}
	}
	if int(s) < len(w.st.nb) {
		return w.st.nb[s]
	}
	return nil
}

func (w *view) row0(s uint32) []Entry {
	if w.p != nil {
		if r, ok := w.p.v0[s]; ok {
			return r.e
		}
	}
	if int(s) < len(w.st.v0) {
		return w.st.v0[s]
	}
	return nil
}

// scale is s's row scale: the planned one of an added item, else the state's.
func (w *view) scale(s uint32) float32 {
	if w.p != nil && s == w.p.add {
		return w.p.m
	}
	if int(s) < len(w.st.m) && w.st.m[s] > 0 {
		return w.st.m[s]
	}
	return 1
}

func (w *view) z(s uint32) float32 {
	if w.p != nil {
		if r, ok := w.p.v0[s]; ok {
			return r.z
		}
	}
	if int(s) < len(w.st.z) {
		return w.st.z[s]
	}
	return 0
}

// slots bounds the slots the view can name (the state's, or the added item's).
func (w *view) slots() int {
	n := len(w.st.present)
	if w.p != nil && w.p.add != NoSlot {
		n = max(n, int(w.p.add)+1)
	}
	return n
}

func (w *view) present(s uint32) bool {
	if w.p != nil {
		if s == w.p.add {
			return true
		}
		if s == w.p.del {
			return false
		}
	}
	return w.st.Has(s)
}

// inTop reports whether id is among the first k of list.
func inTop(list []Neighbor, id uint32, k int) bool {
	for _, n := range list[:min(k, len(list))] {
		if n.ID == id {
			return true
		}
	}
	return false
}

// recip appends R(i, k) to dst: i and each of its k nearest that has i among its own k nearest.
// An item without a list (absent) has none.
func recip(w lister, i uint32, k int, dst []uint32) []uint32 {
	li := w.list(i)
	dst = append(dst, i)
	for _, c := range li[:min(k, len(li))] {
		if inTop(w.list(c.ID), i, k) {
			dst = append(dst, c.ID)
		}
	}
	return dst
}

// v0Row is the paper's V row of item i before local query expansion: R(i, K1), expanded by every
// R(c, K1/2) of a member c that shares more than 2/3 of its members with R(i, K1), weighted by
// exp(-d(i, j)/m) (m: i's row scale) and normalised to sum 1. It also returns the weights' sum
// before normalisation.
func v0Row(w lister, p Params, sc *scratch, i uint32, dist Dist, m float32) ([]Entry, float32) {
	sc.reset(w.slots())
	r1 := recip(w, i, p.K1, sc.r1[:0])
	sc.r1 = r1
	// marks hold the expanded set; r1 members are also in sc.ids for the overlap test.
	set := sc.set[:0]
	for _, c := range r1 {
		sc.mark(c)
		set = append(set, c)
	}
	// An accumulator flag distinguishes R(i,K1) members from expansion members: acc = 1 for r1.
	for _, c := range r1 {
		sc.acc[c] = 1
	}
	for _, c := range r1[1:] {
		rc := recip(w, c, p.half(), sc.rc[:0])
		sc.rc = rc
		in := 0
		for _, e := range rc {
			if sc.marked(e) && sc.acc[e] == 1 {
				in++
			}
		}
		if 3*in > 2*len(rc) {
			for _, e := range rc {
				if sc.mark(e) {
					sc.acc[e] = 0
					set = append(set, e)
				}
			}
		}
	}
	sc.set = set
	li := w.list(i)
	row := make([]Entry, 0, len(set))
	var sum float64
	for _, j := range set {
		d := float32(0)
		if j != i {
			d = listDist(li, j)
			if d < 0 {
				d = dist(i, j)
			}
		}
		x := math.Exp(-float64(d / m))
		sum += x
		row = append(row, Entry{j, float32(x)})
	}
	for _, c := range r1 {
		sc.acc[c] = 0
	}
	for k := range row {
		row[k].W = float32(float64(row[k].W) / sum)
	}
	slices.SortFunc(row, func(a, b Entry) int { return cmpU32(a.ID, b.ID) })
	return row, float32(sum)
}

// listDist is id's distance from a list, or -1 when the list lacks it.
func listDist(list []Neighbor, id uint32) float32 {
	for _, n := range list {
		if n.ID == id {
			return n.D
		}
	}
	return -1
}

// vRow is local query expansion: the mean of the V0 rows of g and its K2-1 nearest.
func vRow(w lister, p Params, sc *scratch, g uint32) []Entry {
	l := w.list(g)
	f := 1 + min(p.K2-1, len(l))
	acc := append(sc.row[:0], w.row0(g)...)
	tmp := sc.tmp
	for _, n := range l[:f-1] {
		tmp = mergeAdd(tmp[:0], acc, w.row0(n.ID))
		acc, tmp = tmp, acc
	}
	sc.row, sc.tmp = acc, tmp
	out := make([]Entry, len(acc))
	inv := 1 / float32(f)
	for k, e := range acc {
		out[k] = Entry{e.ID, e.W * inv}
	}
	return out
}

// mergeAdd appends to dst the union of two rows sorted by ID, adding the weights of shared IDs.
func mergeAdd(dst, a, b []Entry) []Entry {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].ID < b[j].ID:
			dst = append(dst, a[i])
			i++
		case a[i].ID > b[j].ID:
			dst = append(dst, b[j])
			j++
		default:
			dst = append(dst, Entry{a[i].ID, a[i].W + b[j].W})
			i++
			j++
		}
	}
	dst = append(dst, a[i:]...)
	return append(dst, b[j:]...)
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cmpNeighbor orders by distance, then ID, so lists are deterministic.
func cmpNeighbor(a, b Neighbor) int {
	switch {
	case a.D < b.D:
		return -1
	case a.D > b.D:
		return 1
	}
	return cmpU32(a.ID, b.ID)
}
