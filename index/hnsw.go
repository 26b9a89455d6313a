package index

import (
	"math"
	"math/rand"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// graph is the HNSW core (Malkov & Yashunin 2018) over unit vectors held in
// one contiguous slab, indexed by dense internal slots. The slab holds float32
// vectors, or (once compressed) their SQ8 codes: see sq8.go.
//
// Locking: the owner (Collection) guarantees:
//   - at most one mutator operation at a time (Collection.wmu);
//   - read-only methods (search, exact, planDelete) run under the owner's RLock;
//   - methods that resize or free (grow, place, compress, applyDelete) run
//     under the owner's Lock.
//
// Linking (hnsw_build.go) is the exception: nodes placed under Lock are then
// linked under RLock, by several goroutines at once and concurrently with
// searches. Link lists are therefore read and written with atomic loads and
// stores (plain moves on amd64), a writer changes a node's list only under
// that node's stripe lock (g.locks), and the entry point is one atomic word.
// A search may see a list mid-update (some old ids, some new): every id in it
// is a linked node, which is all a beam search needs. A node is connected
// bottom up (link), so one that a search reaches on a layer already has its
// lists on every layer below.
type graph struct {
	dim   int
	m, m0 int // max links per node on upper layers / layer 0
	efc   int
	ml    float64

	vecs  []float32 // float storage: slot*dim .. slot*dim+dim; nil once compressed
	codes []uint8   // SQ8 storage, same layout; nil while float
	sq    *sq8      // non-nil once compressed

	levels []int8     // -1: slot free
	links0 []uint32   // layer-0 links, stride m0+1: count, then ids
	in0    []int32    // in0[slot]: how many layer-0 lists hold slot (atomic); see replaceLinks
	upper  [][]uint32 // upper[slot]: layers 1..level, stride m+1 each

	top   atomic.Uint64 // entry point: entry | (maxLevel+1)<<32; 0 = empty
	count int           // placed nodes

	rng   *rand.Rand
	pool  sync.Pool  // *searcher
	topMu sync.Mutex // held by an insert that may raise the top level
	locks [linkStripes]sync.Mutex
}

// linkStripes is the number of link-list locks: a node's list is guarded by
// locks[slot%linkStripes]. A writer holds one at a time, so they cannot deadlock.
const linkStripes = 1024

func newGraph(dim, m, efc int, ml float64, seed int64) *graph {
	if m < 2 {
		m = 2
	}
	if ml <= 0 {
		ml = 1 / math.Log(float64(m))
	}
	return &graph{dim: dim, m: m, m0: 2 * m, efc: efc, ml: ml, rng: rand.New(rand.NewSource(seed))}
}

// entryPoint is the node searches start from and its level; level -1 when the graph is empty.
func (g *graph) entryPoint() (uint32, int) {
	t := g.top.Load()
	return uint32(t), int(t>>32) - 1
}

func (g *graph) setEntryPoint(slot uint32, level int) {
	g.top.Store(uint64(slot) | uint64(level+1)<<32)
}

// maxLevel is the top layer's index, -1 when empty.
func (g *graph) maxLevel() int {
	_, l := g.entryPoint()
	return l
}

// searcher holds per-search scratch memory, reused through graph.pool so that
// a search allocates nothing: visited is an epoch-stamped array (a slot is
// visited when marks[slot] == epoch), so clearing it is one increment.
type searcher struct {
	marks  []uint32
	epoch  uint32
	cands  minHeap
	res    maxHeap
	out    []cand
	q      probe     // the vector being searched for
	qbuf   []float32 // q's decoded vector when it is a stored node
	nb     []uint32  // a copy of one link list
	w      []cand    // insert: the layer's candidates
	beams  [][]cand  // insert: each layer's candidates (beams[lc]), searched before any is connected
	sel    []cand    // selectNeighbors' result
	kept   [][]float32
	dec    []float32 // selectNeighbors: decoded vectors of kept candidates
	cs     []cand    // insert: a neighbour's candidate links
	chosen []cand    // insert: the neighbours chosen on a layer
	ids    []uint32
	ids2   []uint32 // replaceLinks: the new list
	p2     probe    // insert: a neighbour being pruned
	p2buf  []float32
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
	s.newEpoch()
	return s
}

// newEpoch empties the visited set.
func (s *searcher) newEpoch() {
	s.epoch++
	if s.epoch == 0 { // wrapped: stale marks could alias the new epoch
		clear(s.marks)
		s.epoch = 1
	}
}

func (g *graph) putSearcher(s *searcher) {
	s.q.v, s.p2.v = nil, nil // the caller's vectors
	g.pool.Put(s)
}

// vec is a slot's float vector: the slab's, or when compressed a decoded copy
// (it allocates: searches use probes, loops vecOf with a buffer).
func (g *graph) vec(slot uint32) []float32 {
	o := int(slot) * g.dim
	if g.sq != nil {
		v := make([]float32, g.dim)
		g.sq.decode(v, g.codes[o:o+g.dim])
		return v
	}
	return g.vecs[o : o+g.dim : o+g.dim]
}

// code is a slot's SQ8 code. Compressed storage only.
func (g *graph) code(slot uint32) []uint8 {
	o := int(slot) * g.dim
	return g.codes[o : o+g.dim : o+g.dim]
}

// prefetch hints a slot's stored vector into the caches: a search computes one
// neighbour's distance while the next one's vector arrives.
func (g *graph) prefetch(slot uint32) {
	o := int(slot) * g.dim
	if g.sq != nil {
		prefetchBytes(&g.codes[o], g.dim)
	} else {
		prefetchBytes((*uint8)(unsafe.Pointer(&g.vecs[o])), 64*16) // the hardware prefetcher follows the rest
	}
}

// probe is a vector prepared for distance evaluations against stored slots.
type probe struct {
	v  []float32 // the vector (float storage compares it directly)
	sq sqQuery   // compressed storage
}

// prepare sets p up for v; fast picks the int16 form (for the many comparisons of a search).
func (g *graph) prepare(p *probe, v []float32, fast bool) {
	p.v = v
	if g.sq != nil {
		g.sq.prepare(&p.sq, v, fast)
	}
}

// prepareNode sets p up for a stored slot's vector (decoded into buf when compressed).
func (g *graph) prepareNode(p *probe, slot uint32, buf *[]float32, fast bool) {
	g.prepare(p, g.vecOf(slot, buf), fast)
}

// vecOf is a slot's vector as floats: the stored one, or its decoding into *buf.
func (g *graph) vecOf(slot uint32, buf *[]float32) []float32 {
	if g.sq == nil {
		o := int(slot) * g.dim
		return g.vecs[o : o+g.dim : o+g.dim]
	}
	if cap(*buf) < g.dim {
		*buf = make([]float32, g.dim)
	}
	v := (*buf)[:g.dim]
	g.sq.decode(v, g.code(slot))
	return v
}

// dist is 1 - cosine between the probe and a slot (approximate when compressed).
func (g *graph) dist(p *probe, slot uint32) float32 {
	if g.sq != nil {
		return 1 - g.sq.dot(&p.sq, g.code(slot))
	}
	return 1 - dot(p.v, g.vec(slot))
}

// pairDist is 1 - cosine between two stored slots (approximate when
// compressed), the same to the bit whichever comes first (the re-ranking
// state compares distances it computed at different times). Safe
// concurrently.
func (g *graph) pairDist(a, b uint32) float32 {
	if g.sq == nil {
		return 1 - dot(g.vec(a), g.vec(b))
	}
	if a > b {
		a, b = b, a
	}
	s := g.getSearcher()
	g.prepareNode(&s.p2, a, &s.p2buf, false)
	d := g.dist(&s.p2, b)
	g.putSearcher(s)
	return d
}

// list is the link-list storage of a slot on a layer: count, then capacity ids.
func (g *graph) list(slot uint32, lc int) []uint32 {
	if lc == 0 {
		o := int(slot) * (g.m0 + 1)
		return g.links0[o : o+g.m0+1 : o+g.m0+1]
	}
	o := (lc - 1) * (g.m + 1)
	return g.upper[slot][o : o+g.m+1 : o+g.m+1]
}

// neighbors copies a slot's links on a layer into buf with atomic loads: safe
// while inserts run.
func (g *graph) neighbors(slot uint32, lc int, buf []uint32) []uint32 {
	l := g.list(slot, lc)
	n := min(int(atomic.LoadUint32(&l[0])), len(l)-1)
	buf = buf[:0]
	for i := 1; i <= n; i++ {
		buf = append(buf, atomic.LoadUint32(&l[i]))
	}
	return buf
}

// links is a slot's link list on a layer, aliasing the graph: only where no
// insert can run (under the owner's Lock, or RLock with the mutator lock held
// and no linking in progress).
func (g *graph) links(slot uint32, lc int) []uint32 {
	l := g.list(slot, lc)
	return l[1 : 1+l[0]]
}

// setLinks replaces a slot's links on a layer, keeping the layer-0 in-link
// counts. The caller holds the slot's stripe lock or the owner's Lock.
func (g *graph) setLinks(slot uint32, lc int, ids []uint32) {
	if lc == 0 {
		l := g.list(slot, 0)
		old := l[1 : 1+min(int(atomic.LoadUint32(&l[0])), len(l)-1)]
		// Gains first: a node in both lists never shows a count of 0.
		for _, x := range ids {
			if !slices.Contains(old, x) {
				atomic.AddInt32(&g.in0[x], 1)
			}
		}
		for _, x := range old {
			if !slices.Contains(ids, x) {
				atomic.AddInt32(&g.in0[x], -1)
			}
		}
	}
	g.writeLinks(slot, lc, ids)
}

// writeLinks stores a slot's links on a layer: ids first, then the count, so a
// reader that sees the new count sees the ids. The in-link counts are the
// caller's.
func (g *graph) writeLinks(slot uint32, lc int, ids []uint32) {
	l := g.list(slot, lc)
	n := min(len(ids), len(l)-1)
	for i, x := range ids[:n] {
		atomic.StoreUint32(&l[1+i], x)
	}
	atomic.StoreUint32(&l[0], uint32(n))
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
	if g.sq != nil {
		if n*g.dim > cap(g.codes) {
			g.codes = growSlab(g.codes[:old*g.dim], (c-old)*g.dim)
		}
		g.codes = g.codes[:n*g.dim]
		clear(g.codes[old*g.dim:])
	} else {
		if n*g.dim > cap(g.vecs) {
			g.vecs = growSlab(g.vecs[:old*g.dim], (c-old)*g.dim)
		}
		g.vecs = g.vecs[:n*g.dim]
		clear(g.vecs[old*g.dim:])
	}
	if n*(g.m0+1) > cap(g.links0) {
		g.links0 = growSlab(g.links0[:old*(g.m0+1)], (c-old)*(g.m0+1))
	}
	if n > cap(g.in0) {
		g.in0 = slices.Grow(g.in0[:old], c-old)
	}
	g.in0 = g.in0[:n]
	clear(g.in0[old:])
	g.levels = g.levels[:n]
	g.upper = g.upper[:n]
	g.links0 = g.links0[:n*(g.m0+1)]
	for i := old; i < n; i++ {
		g.levels[i] = -1
		g.upper[i] = nil
	}
	clear(g.links0[old*(g.m0+1):])
}

// truncate drops the slots from n on, none of them placed (a failed bulk append). Under Lock.
func (g *graph) truncate(n int) {
	if n >= len(g.levels) {
		return
	}
	g.levels, g.upper, g.in0 = g.levels[:n], g.upper[:n], g.in0[:n]
	g.links0 = g.links0[:n*(g.m0+1)]
	if g.sq != nil {
		g.codes = g.codes[:n*g.dim]
	} else {
		g.vecs = g.vecs[:n*g.dim]
	}
}

// reserve preallocates room for n slots (load path: avoids regrowing a
// multi-GiB slab, which grow would double).
func (g *graph) reserve(n int) {
	l := len(g.levels)
	if n <= l {
		return
	}
	g.levels = slices.Grow(g.levels, n-l)
	g.upper = slices.Grow(g.upper, n-l)
	if g.sq != nil {
		g.codes = growSlab(g.codes, (n-l)*g.dim)
	} else {
		g.vecs = growSlab(g.vecs, (n-l)*g.dim)
	}
	g.links0 = growSlab(g.links0, (n-l)*(g.m0+1))
	g.in0 = slices.Grow(g.in0, n-l)
}

// recountIn0 sets the layer-0 in-link counts from the lists (after they were
// loaded or cleared). Under Lock.
func (g *graph) recountIn0() {
	g.in0 = slices.Grow(g.in0[:0], len(g.levels))[:len(g.levels)]
	clear(g.in0)
	for i, l := range g.levels {
		if l >= 0 {
			for _, x := range g.links(uint32(i), 0) {
				g.in0[x]++
			}
		}
	}
}

// setVector stores an already normalised vector (encoded when compressed).
// Under Lock, slot unlinked.
func (g *graph) setVector(slot uint32, v []float32) {
	g.grow(int(slot) + 1)
	if g.sq != nil {
		g.sq.encode(g.code(slot), v)
		return
	}
	copy(g.vec(slot), v)
}

// compress switches the storage to SQ8 codes with the given ranges, encoding
// every slot's float vector, and frees the floats. Under Lock.
func (g *graph) compress(q *sq8) {
	if g.sq != nil {
		return
	}
	n := len(g.levels)
	codes := make([]uint8, n*g.dim, cap(g.vecs)/max(g.dim, 1)*g.dim)
	for i := range n {
		q.encode(codes[i*g.dim:(i+1)*g.dim], g.vec(uint32(i)))
	}
	g.codes, g.vecs, g.sq = codes, nil, q
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
func (g *graph) greedy(s *searcher, ep cand, lc int) cand {
	for changed := true; changed; {
		changed = false
		s.nb = g.neighbors(ep.id, lc, s.nb)
		for _, n := range s.nb {
			if d := g.dist(&s.q, n); d < ep.d {
				ep = cand{d, n}
				changed = true
			}
		}
	}
	return ep
}

// searchLayer is Algorithm 2 for the probe s.q: a beam search whose result
// set is bounded by ef, stopping when the nearest unexpanded candidate is
// further than the furthest result. Nodes rejected by accept are traversed but
// never returned. The result is s.out, ascending, valid until s is reused.
func (g *graph) searchLayer(s *searcher, eps []cand, ef, lc int, accept func(uint32) bool) []cand {
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
		// Unvisited neighbours first, all hinted into the caches before the first distance: their
		// memory fetches overlap (a third faster on 20k 1280-d codes).
		nb := g.neighbors(c.id, lc, s.nb)
		k := 0
		for _, n := range nb {
			if marks[n] != epoch {
				marks[n] = epoch
				nb[k] = n
				k++
			}
		}
		nb = nb[:k]
		for _, n := range nb {
			g.prefetch(n)
		}
		for _, n := range nb {
			d := g.dist(&s.q, n)
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
		s.nb = nb
	}
	s.out = s.res.sortedAsc(s.out)
	return s.out
}

// selectNeighbors is Algorithm 4 without extendCandidates or
// keepPrunedConnections (as hnswlib): walk candidates nearest first and keep
// one only if it is closer to the base than to every neighbour kept so far.
// cs must be ascending by distance to the base. The result aliases s.sel
// unless cs is returned whole.
func (g *graph) selectNeighbors(s *searcher, cs []cand, m int) []cand {
	if len(cs) <= m {
		return cs
	}
	if g.sq != nil && len(s.dec) < m*g.dim {
		s.dec = make([]float32, m*g.dim)
	}
	out, kept := s.sel[:0], s.kept[:0]
	for _, c := range cs {
		if len(out) >= m {
			break
		}
		var vc []float32
		if g.sq != nil {
			// Decoded where it stays if kept: each candidate is decoded once.
			vc = s.dec[len(out)*g.dim : (len(out)+1)*g.dim]
			g.sq.decode(vc, g.code(c.id))
		} else {
			vc = g.vec(c.id)
		}
		good := true
		for _, vo := range kept {
			if 1-dot(vc, vo) < c.d {
				good = false
				break
			}
		}
		if good {
			out = append(out, c)
			kept = append(kept, vc)
		}
	}
	s.sel, s.kept = out, kept
	return out
}

// search is k-NN: greedy descent on the upper layers, then a beam of width
// max(ef,k) on layer 0. It returns the best k, or when compressed the best
// rescoreDepth(k, ef) by approximate distance, for the caller to re-score
// from the float vectors (rescore). Under RLock.
func (g *graph) search(q []float32, k, ef int, accept func(uint32) bool) []cand {
	entry, top := g.entryPoint()
	if top < 0 || k <= 0 {
		return nil
	}
	s := g.getSearcher()
	g.prepare(&s.q, q, true)
	ep := cand{g.dist(&s.q, entry), entry}
	for lc := top; lc > 0; lc-- {
		ep = g.greedy(s, ep, lc)
	}
	res := g.searchLayer(s, []cand{ep}, max(ef, k), 0, accept)
	if n := g.keep(k, ef); len(res) > n {
		res = res[:n]
	}
	out := slices.Clone(res)
	g.putSearcher(s)
	return out
}

// keep is how many approximate results a search of k passes on: k with float
// storage, more when compressed so that re-scoring can restore the order.
func (g *graph) keep(k, ef int) int {
	if g.sq == nil {
		return k
	}
	return rescoreDepth(k, ef)
}

// rescoreDepth is how many candidates a compressed search re-scores from float
// vectors: k+max(5, k/2), bounded by the beam. On 20k clustered 1280-d vectors
// k+2 already restored float recall at every ef; on 20k real embeddings
// (Fashion-MNIST) k alone lost 1.5 points of recall@10 and k+5 none (as 2k, 3k
// or 6k); each one more costs a float vector's fetch (from bbolt in a collection). TestCompressedRecall holds
// recall within 0.005 of float storage at the same ef with it.
func rescoreDepth(k, ef int) int {
	return max(k, min(k+max(5, k/2), ef))
}

// exact is brute force over every linked slot (or over slots when non-nil).
// When compressed it returns the best exactDepth(k) by approximate distance,
// for the caller to re-score.
func (g *graph) exact(q []float32, k int, slots []uint32, accept func(uint32) bool) []cand {
	if k <= 0 {
		return nil
	}
	if g.sq != nil {
		k = exactDepth(k)
	}
	var p probe
	g.prepare(&p, q, true)
	h := make(maxHeap, 0, k+1)
	try := func(i uint32) {
		if g.levels[i] < 0 || (accept != nil && !accept(i)) {
			return
		}
		d := g.dist(&p, i)
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

// exactDepth is how many approximate candidates an exact search re-scores:
// the quantisation error (TestSQ8Accuracy: under 0.005 in cosine) must not
// push a true top-k item beyond it. Generous: the scan of every code costs
// far more than a few hundred re-scoring lookups.
func exactDepth(k int) int { return 2*k + 200 }

// rescore replaces the approximate distances of cs with exact ones against q,
// from the float vectors fetch copies into its dst (false: slot gone, dropped),
// and returns the best k ascending.
func rescore(q []float32, cs []cand, k int, fetch func(slot uint32, dst []float32) bool) []cand {
	buf := make([]float32, len(q))
	out := cs[:0]
	for _, c := range cs {
		if fetch(c.id, buf) {
			out = append(out, cand{1 - dot(q, buf), c.id})
		}
	}
	slices.SortFunc(out, cmpCand)
	if len(out) > k {
		out = out[:k]
	}
	return out
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
