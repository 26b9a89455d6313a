package index

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/lookalike/lookalike/rerank"
)

// Re-ranking state (package rerank): each item's K1 nearest neighbours and the k-reciprocal rows
// derived from them, kept current by every add, replace and delete. Like the graph it is derived
// from the stored vectors: a change is planned under mu.RLock beside searches (an added item's
// nearest come from its insertion beam; the items that listed a deleted one search again) and
// applied under the same short mu.Lock as the graph change. The lists are snapshotted with the
// graph and brought up to date by the same replay; the rows are recomputed at Open.

var keyKNN = []byte("knn")

// rrDist is the distance of two stored items (from their codes when compressed: within ~0.005).
func (c *Collection) rrDist(a, b uint32) float32 { return c.g.pairDist(a, b) }

// rrList turns x's nearest into a list. Compressed, a search's distances come from the query's
// int16 form: they are recomputed with rrDist, which the state uses for every other pair, so that
// the rows built from the lists are the rows a rebuild computes.
func (c *Collection) rrList(x uint32, cs []cand) []rerank.Neighbor {
	if c.g.sq == nil {
		return toNeighbors(cs)
	}
	out := make([]rerank.Neighbor, len(cs))
	for i, y := range cs {
		out[i] = rerank.Neighbor{ID: y.id, D: c.rrDist(x, y.id)}
	}
	slices.SortFunc(out, func(a, b rerank.Neighbor) int {
		return cmpCand(cand{a.D, a.ID}, cand{b.D, b.ID})
	})
	return out
}

// rrKnown admits what accept admits (nil: all) among the items the re-ranking state holds: a
// multi-item write links its items into the graph before it lists them one by one.
func (c *Collection) rrKnown(accept func(uint32) bool) func(uint32) bool {
	return func(s uint32) bool { return c.rr.Has(s) && (accept == nil || accept(s)) }
}

func toNeighbors(cs []cand) []rerank.Neighbor {
	out := make([]rerank.Neighbor, len(cs))
	for i, x := range cs {
		out[i] = rerank.Neighbor{ID: x.id, D: x.d}
	}
	return out
}

// rrNearest returns the k nearest items to q that accept admits, exactly in small collections
// (as searches do) and through the graph otherwise. Under RLock.
func (c *Collection) rrNearest(q []float32, k int, accept func(uint32) bool) []cand {
	var hits []cand
	if c.g.count <= c.db.opts.ExactThreshold {
		hits = c.g.exact(q, k, nil, accept)
	} else {
		hits = c.g.search(q, k, max(k, min(c.cfg.EfSearch, MaxEf)), accept)
	}
	// Compressed, more come back for re-scoring: the lists keep the approximate best k.
	return hits[:min(k, len(hits))]
}

// rrPlanAdd plans listing a slot just planned into the graph (beam: its insertion beam, or nil
// to search for one). Under RLock and wmu.
func (c *Collection) rrPlanAdd(slot uint32, beam []cand) *rerank.Patch {
	if c.rrSkip {
		return nil
	}
	notSelf := c.rrKnown(func(s uint32) bool { return s != slot })
	var buf []float32
	switch {
	case c.g.count < c.db.opts.ExactThreshold:
		// Small collections are searched exactly, and so are their lists kept: every item is a
		// candidate, so the new one enters every list it belongs in.
		beam = c.g.exact(c.g.vecOf(slot, &buf), c.g.count, nil, notSelf)
	case beam == nil:
		beam = c.g.search(c.g.vecOf(slot, &buf), c.cfg.EfConstruction, c.cfg.EfConstruction, notSelf)
	default:
		beam = slices.DeleteFunc(slices.Clone(beam), func(x cand) bool { return !notSelf(x.id) })
	}
	return c.rr.PlanAdd(slot, c.rrList(slot, beam), c.rrDist)
}

// rrPlanRemove plans unlisting a slot: the items that listed it search again, without it. Under
// RLock and wmu; the graph may still hold the slot.
func (c *Collection) rrPlanRemove(slot uint32) *rerank.Patch {
	if c.rrSkip {
		return nil
	}
	k1 := c.rr.Params().K1
	var buf []float32
	return c.rr.PlanRemove(slot, func(y uint32) []rerank.Neighbor {
		return c.rrList(y, c.rrNearest(c.g.vecOf(y, &buf), k1, c.rrKnown(func(s uint32) bool { return s != y && s != slot })))
	}, c.rrDist)
}

// RerankParams returns the re-ranking parameters.
func (c *Collection) RerankParams() rerank.Params {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rr.Params()
}

// SetRerankParams replaces the re-ranking parameters, rebuilding the rows (and, for another K1,
// the lists from the graph) on all cores; it waits for writes, searches and a load after Open.
// For comparisons (lookalike eval): the parameters are not stored, and a reopened collection has
// the defaults.
func (c *Collection) SetRerankParams(p rerank.Params) error {
	if c.rrDone != nil { // set before the collection is shared, never changed
		<-c.rrDone
	}
	st, err := rerank.New(p)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	live := make([]bool, c.rr.Slots())
	for s := range live {
		live[s] = c.rr.Has(uint32(s))
	}
	if p.K1 == c.rr.Params().K1 {
		for s, ok := range live {
			if ok {
				st.SetList(uint32(s), c.rr.List(uint32(s)))
			}
		}
	} else {
		c.rrListsFromGraph(st, live, func(f func()) { f() })
	}
	st.Rebuild(c.rrDist, runtime.GOMAXPROCS(0))
	c.rr = st
	return nil
}

// ---- search ----

// exactMatchDist is the distance (1 - cosine) within which a result is the query's photo itself:
// identical pixels give identical vectors (0 up to rounding), a JPEG re-encode of the same photo
// scores 0.99-0.999 and unrelated look-alikes far less (intel's exact-duplicate bound, 0.9995).
const exactMatchDist = 0.0005

// rerankSearch answers a search with query expansion and/or k-reciprocal re-ranking. self is the
// queried item (Similar) or noSlot. Under RLock.
// Results carry their distance to the query as given, also after expansion: a score says how
// alike the result and the query are, whatever ordered them.
//
// Re-ranking orders look-alikes; it never puts one above an exact match of the query as sent
// (keepExactFirst). Query expansion moves the query off the photo it was taken from, and the
// k-reciprocal Jaccard distance (weight 1 - lambda = 0.7) of that photo and of its close
// look-alikes then differs by noise far larger than their original distances: the expanded
// query's row, averaged over its K2 nearest, equals a look-alike's whenever their K2 nearest
// coincide, and the photo's own row can differ by one neighbour at the K2 boundary.
func (c *Collection) rerankSearch(q []float32, need, ef int, o SearchOptions, accept func(uint32) bool, self uint32) []cand {
	known := accept // query expansion alone while the state loads (startRerank)
	if c.rrReady {
		known = c.rrKnown(accept)
	}
	out, plain := c.rerankOrder(q, need, ef, o, known, self)
	if o.Rerank.QE() {
		var p probe
		c.g.prepare(&p, q, true)
		for i := range out {
			out[i].d = c.g.dist(&p, out[i].id)
		}
	}
	return keepExactFirst(plain, out, need)
}

// keepExactFirst puts the exact matches among plain (the query's nearest as sent, ascending,
// accepted) first, by distance, then the re-ranked results without them, need in all.
func keepExactFirst(plain, ranked []cand, need int) []cand {
	n := 0
	for n < len(plain) && plain[n].d <= exactMatchDist {
		n++
	}
	if n == 0 {
		return ranked
	}
	out := make([]cand, 0, need)
	out = append(out, plain[:min(n, need)]...)
	for _, r := range ranked {
		if len(out) == need {
			break
		}
		if !slices.ContainsFunc(plain[:n], func(p cand) bool { return p.id == r.id }) {
			out = append(out, r)
		}
	}
	return out
}

// rerankOrder ranks the results; their distances are to the query as searched (expanded or not).
// plain is the query's nearest as sent (accepted, ascending): at least its first, unless nothing
// is accepted.
func (c *Collection) rerankOrder(q []float32, need, ef int, o SearchOptions, accept func(uint32) bool, self uint32) (ranked, plain []cand) {
	if o.Rerank.QE() {
		// Average query expansion: the query and its top results, searched again.
		plain = c.nearest(q, rerank.DefaultQE, ef, o, accept)
		sum := slices.Clone(q)
		var buf []float32
		for _, h := range plain {
			for j, x := range c.g.vecOf(h.id, &buf) {
				sum[j] += x
			}
		}
		if e, ok := normalize(sum); ok {
			q, self = e, noSlot
		}
		if !o.Rerank.KR() {
			return c.nearest(q, need, ef, o, accept), plain
		}
	}
	var qp probe
	c.g.prepare(&qp, q, true)
	dq := func(g uint32) float32 { return c.g.dist(&qp, g) }
	// An external query is placed among the items from its nearest, unfiltered: the neighbour
	// structure is the collection's, a filter only selects among the re-ranked results.
	nearK := 2 * c.rr.Params().K1
	var rq *rerank.Query
	var base []cand
	switch {
	case self != noSlot:
		rq = c.rr.ItemQuery(self)
		base = c.nearest(q, need, ef, o, accept)
	case o.Filter == nil:
		// One search serves both: at most the exclusions and the queried item fall out of base.
		all := c.nearest(q, max(need+len(o.ExcludeIDs)+1, nearK), ef, o, c.rrKnown(nil))
		for _, h := range all {
			if len(base) < need && (accept == nil || accept(h.id)) {
				base = append(base, h)
			}
		}
		rq = c.rr.ExternalQuery(toNeighbors(all[:min(nearK, len(all))]), dq, c.rrDist)
	default:
		base = c.nearest(q, need, ef, o, accept)
		rq = c.rr.ExternalQuery(toNeighbors(c.nearest(q, nearK, ef, SearchOptions{Exact: o.Exact}, c.rrKnown(nil))), dq, c.rrDist)
	}
	rr := c.rr.Rank(rq, toNeighbors(base), need, dq, accept)
	ranked = make([]cand, len(rr))
	for i, r := range rr {
		ranked[i] = cand{r.D, r.ID}
	}
	if plain == nil {
		plain = base // no expansion: the query searched is the query sent
	}
	return ranked, plain
}

// ---- load and snapshot ----

// startRerank loads the re-ranking state (loadRerank) of a collection Open just loaded: at Open
// below Options.RerankLoadAsyncAt items, else on a goroutine the DB waits for at Close. Meanwhile
// searches run without k-reciprocal re-ranking (rrReady, withoutKR), and writes run too: they
// leave the state to the loader, naming their slots (rrDeferred), and the loader replays those
// under wmu once its rows are built. Only that replay holds writes back, not the whole load
// (35-70 s at 1 M items).
func (c *Collection) startRerank(blob []byte, seq uint64, live []bool, touched map[uint32]bool) {
	at := c.db.opts.RerankLoadAsyncAt
	if at < 0 || c.g.count < at {
		c.loadRerank(blob, seq, live, touched)
		return
	}
	c.rrReady, c.rrPending = false, map[uint32]bool{}
	c.rrDone = make(chan struct{})
	c.db.wg.Add(1)
	go func() {
		defer c.db.wg.Done()
		defer close(c.rrDone)
		if rerankLoadHook != nil {
			rerankLoadHook()
		}
		c.loadRerank(blob, seq, live, touched)
	}()
}

// rerankLoadHook, when set (tests), runs first on startRerank's goroutine.
var rerankLoadHook func()

// rrDeferred reports whether writes leave the re-ranking state alone now because its loader
// runs, and if so names slots for the loader to replay. Under wmu.
func (c *Collection) rrDeferred(slots ...uint32) bool {
	if c.rrReady {
		return false
	}
	for _, s := range slots {
		c.rrPending[s] = true
	}
	return true
}

// RerankApplied is the re-ranking a search asking for m gets now: m, less k-reciprocal
// re-ranking while the state loads after Open.
func (c *Collection) RerankApplied(m rerank.Mode) rerank.Mode {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.rrReady && m.KR() {
		return withoutKR(m)
	}
	return m
}

// withoutKR is m without k-reciprocal re-ranking.
func withoutKR(m rerank.Mode) rerank.Mode {
	if m.QE() {
		return rerank.ModeQE
	}
	return rerank.ModeNone
}

// underRLock runs f under mu.RLock: the loader reads the graph and the vectors a piece at a time
// beside writes, never holding the lock long enough to stall one.
func (c *Collection) underRLock(f func()) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	f()
}

// rrDistRLocked is rrDist under its own read lock, for the loader's rows: a write may move the
// slab the vectors live in.
func (c *Collection) rrDistRLocked(a, b uint32) float32 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rrDist(a, b)
}

// loadRerank makes the re-ranking state of a loaded collection: from the lists snapshotted with
// the graph at seq (blob), brought up to date by replaying the touched slots, or else by
// searching the graph for every item's neighbours; then the rows. At Open (before the collection
// is shared) or on startRerank's goroutine, where writes may run beside it: it reads the graph
// under short read locks, searches skip the state until it is ready, and the slots written
// meanwhile are replayed at the end under wmu, as the writes would have applied them.
func (c *Collection) loadRerank(blob []byte, seq uint64, live []bool, touched map[uint32]bool) {
	start := time.Now()
	st := rerank.NewDefault()
	how := "lists from the snapshot"
	if err := decodeLists(st, blob, seq, live, touched); err != nil {
		st = rerank.NewDefault()
		if blob != nil {
			c.db.log.Warn("re-ranking lists unusable, searching the graph for them", "collection", c.name, "err", err)
		}
		c.rrListsFromGraph(st, live, c.underRLock)
		how, touched = "lists from the graph", nil
	}
	c.mu.Lock()
	c.rr = st // the replay plans through c.rr; searches read it only once ready
	c.mu.Unlock()
	if len(touched) > 0 {
		c.rrReplay(st, slices.Collect(maps.Keys(touched)), func(s uint32) bool { return int(s) < len(live) && live[s] })
		how += " + replay"
	}
	st.Rebuild(c.rrDistRLocked, runtime.GOMAXPROCS(0))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if n := len(c.rrPending); n > 0 {
		c.rrReplay(st, slices.Collect(maps.Keys(c.rrPending)), func(s uint32) bool { return int(s) < len(c.g.levels) && c.g.levels[s] >= 0 })
		how += fmt.Sprintf(" + %d written while loading", n)
	}
	c.mu.Lock()
	c.rrReady, c.rrFrom, c.rrPending = true, how, nil
	c.mu.Unlock()
	c.db.log.Info("re-ranking state ready", "collection", c.name, "items", st.Len(), "from", how, "took", time.Since(start))
}

// rrReplay brings st (c.rr) up to date for slots changed since its lists were taken: each is
// unlisted if st lists it, then listed again, in slot order, if linked says it is in the graph.
// Plans are made under a read lock and applied under the write lock, as a write applies them.
func (c *Collection) rrReplay(st *rerank.State, slots []uint32, linked func(uint32) bool) {
	slices.Sort(slots)
	apply := func(plan func() *rerank.Patch) {
		var rp *rerank.Patch
		c.underRLock(func() { rp = plan() })
		c.mu.Lock()
		st.Apply(rp)
		c.mu.Unlock()
	}
	for _, s := range slots {
		if st.Has(s) {
			apply(func() *rerank.Patch { return c.rrPlanRemove(s) })
		}
	}
	for _, s := range slots {
		apply(func() *rerank.Patch {
			if !linked(s) || st.Has(s) {
				return nil
			}
			return c.rrPlanAdd(s, nil)
		})
	}
}

// rrListsFromGraph lists every live item's nearest through the graph, on all cores; guard runs
// each item's search (under a read lock when writes may run beside it).
func (c *Collection) rrListsFromGraph(st *rerank.State, live []bool, guard func(func())) {
	k1 := st.Params().K1
	lists := make([][]rerank.Neighbor, len(live))
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []float32
			for s := w; s < len(live); s += workers {
				if live[s] {
					self := uint32(s)
					guard(func() {
						lists[s] = c.rrList(self, c.rrNearest(c.g.vecOf(self, &buf), k1, func(x uint32) bool { return x != self }))
					})
				}
			}
		}()
	}
	wg.Wait()
	for s, ok := range live {
		if ok {
			st.SetList(uint32(s), lists[s])
		}
	}
}

// Lists snapshot, stored under "knn" beside the graph snapshot and written in its transaction,
// with each item's row scale (rerank.Params.RowScale: measuring them anew would cost RowScale
// distances per item at Open):
//
//	"LKN2" | seq u64 | slots u32 | k1 u32 | row scale sample u32 |
//	per slot: n u8 (255 = no item), then scale f32, n x (id u32, distance f32) | crc32c u32
//
// "LKN1", without the sample size and the scales, is still read (the scales are then measured).
var (
	knnMagic   = []byte("LKN2")
	knnMagicV1 = []byte("LKN1")
)

const knnAbsent = 255

// encodeLists writes the lists of slots 0..n-1 (the graph's slots: every item is among them).
func encodeLists(st *rerank.State, seq uint64, n int) []byte {
	b := make([]byte, 0, 4+8+8+4+n*(1+4+8*st.Params().K1)+4)
	b = append(b, knnMagic...)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = binary.LittleEndian.AppendUint32(b, uint32(st.Params().K1))
	b = binary.LittleEndian.AppendUint32(b, uint32(st.Params().RowScale))
	for s := range n {
		if !st.Has(uint32(s)) {
			b = append(b, knnAbsent)
			continue
		}
		l := st.List(uint32(s))
		b = append(b, byte(len(l)))
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(st.Scale(uint32(s))))
		for _, x := range l {
			b = binary.LittleEndian.AppendUint32(b, x.ID)
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x.D))
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// decodeLists loads snapshotted lists into an empty st. As for the graph, every slot not touched
// since must be an item exactly when it is live, and lists may name only live or touched slots.
func decodeLists(st *rerank.State, b []byte, seq uint64, live []bool, touched map[uint32]bool) error {
	v2 := len(b) >= 4 && string(b[:4]) == string(knnMagic)
	if len(b) < 4+8+8+4 || (!v2 && string(b[:4]) != string(knnMagicV1)) {
		return errBadSnap
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return errBadSnap
	}
	if binary.LittleEndian.Uint64(b[4:]) != seq {
		return errStaleSnap
	}
	n := int(binary.LittleEndian.Uint32(b[12:]))
	if int(binary.LittleEndian.Uint32(b[16:])) != st.Params().K1 || n > len(live) {
		return errStaleSnap
	}
	ok := func(s uint32) bool { return int(s) < len(live) && (live[s] || touched[s]) }
	p := 20
	// The scales are kept when they were measured with this state's sample size, else measured.
	useScales := false
	if v2 {
		if len(body) < p+4 {
			return errBadSnap
		}
		useScales = int(binary.LittleEndian.Uint32(body[p:])) == st.Params().RowScale
		p += 4
	}
	var list []rerank.Neighbor
	for s := range n {
		if p >= len(body) {
			return errBadSnap
		}
		cnt := int(body[p])
		p++
		if cnt == knnAbsent {
			if live[s] && !touched[uint32(s)] {
				return errStaleSnap
			}
			continue
		}
		var scale float32
		if v2 {
			if len(body)-p < 4 {
				return errBadSnap
			}
			scale = math.Float32frombits(binary.LittleEndian.Uint32(body[p:]))
			p += 4
		}
		if cnt > st.Params().K1 || len(body)-p < 8*cnt {
			return errBadSnap
		}
		if !live[s] && !touched[uint32(s)] {
			return errStaleSnap
		}
		list = list[:0]
		for range cnt {
			x := rerank.Neighbor{ID: binary.LittleEndian.Uint32(body[p:]), D: math.Float32frombits(binary.LittleEndian.Uint32(body[p+4:]))}
			p += 8
			if !ok(x.ID) || x.ID == uint32(s) || math.IsNaN(float64(x.D)) {
				return errBadSnap
			}
			for _, y := range list { // ascending, each item once
				if y.ID == x.ID || y.D > x.D {
					return errBadSnap
				}
			}
			list = append(list, x)
		}
		st.SetList(uint32(s), list)
		if useScales {
			st.SetScale(uint32(s), scale) // one out of range is measured again
		}
	}
	if p != len(body) {
		return errBadSnap
	}
	for s := n; s < len(live); s++ { // items created after the snapshot
		if live[s] && !touched[uint32(s)] {
			return errStaleSnap
		}
	}
	return nil
}
