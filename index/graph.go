package index

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Graph is the HNSW core on its own: in memory, without storage, filters or locking, over vectors
// numbered 0, 1, ... in the order they are added. Collections wrap the same core; Graph exists so
// that benchmarks (internal/bench, `lookalike bench search`) can compare the algorithm like for like
// with other in-memory indexes. It is not safe for concurrent use (Link uses several goroutines
// itself).
type Graph struct {
	g      *graph
	linked int  // vectors 0..linked-1 are linked
	q      *sq8 // the ranges Compress learned
	fetch  func(i uint32, dst []float32) bool
}

// NewGraph returns an empty graph of dim-dimensional vectors with at most m links per node on the
// upper layers (2m on layer 0) and an insertion beam of efConstruction; seed fixes the levels drawn.
func NewGraph(dim, m, efConstruction int, seed int64) *Graph {
	return &Graph{g: newGraph(dim, m, efConstruction, 0, seed)}
}

// Reserve makes room for n vectors in all, so that a large build does not regrow its slab.
func (g *Graph) Reserve(n int) { g.g.reserve(n) }

// Compress makes the graph hold SQ8 codes instead of float32 vectors, with per-dimension ranges
// learned from sample (as a collection learns them from its first SQ8TrainAt items). Vectors added
// before are encoded. Searches re-score their best candidates with the float vectors fetch copies
// (normalised) into dst, as collections do from bbolt.
func (g *Graph) Compress(sample [][]float32, fetch func(i uint32, dst []float32) bool) error {
	t := newSQ8Trainer(g.g.dim)
	for _, v := range sample {
		u, err := g.query(v)
		if err != nil {
			return err
		}
		t.add(u)
	}
	g.q = t.quantizer()
	g.g.compress(g.q)
	g.fetch = fetch
	return nil
}

// UseFloat switches a compressed graph to float32 storage, filled from fetch, keeping its links:
// the same graph searched with either storage (a million-vector benchmark need not build twice).
// UseCompressed switches back.
func (g *Graph) UseFloat() {
	if g.g.sq == nil {
		return
	}
	n := len(g.g.levels)
	vecs := make([]float32, n*g.g.dim)
	for i := range n {
		g.fetch(uint32(i), vecs[i*g.g.dim:(i+1)*g.g.dim])
	}
	g.g.vecs, g.g.codes, g.g.sq = vecs, nil, nil
}

// UseCompressed re-encodes a graph switched by UseFloat with its ranges and frees the floats.
func (g *Graph) UseCompressed() {
	if g.q != nil {
		g.g.compress(g.q)
	}
}

// Add normalises v and inserts it under the next number (Len before the call). A vector of the
// wrong length is ErrDimMismatch; a zero or non-finite one ErrInvalidItem.
func (g *Graph) Add(v []float32) error {
	if err := g.Append(v); err != nil {
		return err
	}
	return g.Link(context.Background(), 1)
}

// Append normalises v and stores it under the next number without linking it: Link links every
// appended vector at once. Errors as Add.
func (g *Graph) Append(v []float32) error {
	u, err := g.query(v)
	if err != nil {
		return err
	}
	id := uint32(len(g.g.levels))
	g.g.setVector(id, u)
	g.g.place(id, g.g.randomLevel())
	return nil
}

// AppendAll appends vs as Append does, normalising and storing them on workers goroutines (0:
// GOMAXPROCS), which it owns: a bulk load's storing scales with the linking after it. On an error
// (the first bad vector, by index) nothing is appended.
func (g *Graph) AppendAll(vs [][]float32, workers int) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, len(vs)/256))
	first := len(g.g.levels)
	dim := g.g.dim
	// Vectors are written straight into the slab (float) or encoded from a per-goroutine buffer
	// (SQ8); the slab grows first, under no lock since a Graph is not shared.
	g.g.grow(first + len(vs))
	bad := make([]int, workers)
	var wg sync.WaitGroup
	chunk := (len(vs) + workers - 1) / workers
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bad[w] = -1
			buf := make([]float32, dim)
			for i := w * chunk; i < min(len(vs), (w+1)*chunk); i++ {
				slot := uint32(first + i)
				dst := buf
				if g.g.sq == nil {
					o := int(slot) * dim
					dst = g.g.vecs[o : o+dim]
				}
				if len(vs[i]) != dim || !normalizeInto(dst, vs[i]) {
					bad[w] = i
					return
				}
				if g.g.sq != nil {
					g.g.sq.encode(g.g.code(slot), dst)
				}
			}
		}()
	}
	wg.Wait()
	for _, i := range bad {
		if i >= 0 {
			g.g.truncate(first)
			_, err := g.query(vs[i])
			return fmt.Errorf("vector %d: %w", i, err)
		}
	}
	for i := range vs {
		g.g.place(uint32(first+i), g.g.randomLevel())
	}
	return nil
}

// Link links the appended vectors on workers goroutines (0: GOMAXPROCS). The graph it builds has
// the recall of a serial build (TestConcurrentBuildRecall). On ctx's end it returns ctx.Err() and
// the graph must not be used.
func (g *Graph) Link(ctx context.Context, workers int) error {
	n := len(g.g.levels)
	if g.linked >= n {
		return nil
	}
	slots := make([]uint32, 0, n-g.linked)
	for i := g.linked; i < n; i++ {
		slots = append(slots, uint32(i))
	}
	if err := g.g.linkAll(ctx, slots, workers, nil); err != nil {
		return err
	}
	g.linked = n
	return nil
}

// Search returns the numbers of the k nearest vectors to q by cosine, best first, with a beam of
// max(ef, k). Errors as Add.
func (g *Graph) Search(q []float32, k, ef int) ([]uint32, error) {
	u, err := g.query(q)
	if err != nil {
		return nil, err
	}
	hits := g.g.search(u, k, ef, nil)
	if g.g.sq != nil {
		hits = rescore(u, hits, k, g.fetch)
	}
	return ids(hits), nil
}

// Exact is Search by brute force: the ground truth recall is measured against. On a compressed
// graph it scans the codes and re-scores the best exactDepth(k).
func (g *Graph) Exact(q []float32, k int) ([]uint32, error) {
	u, err := g.query(q)
	if err != nil {
		return nil, err
	}
	hits := g.g.exact(u, k, nil, nil)
	if g.g.sq != nil {
		hits = rescore(u, hits, k, g.fetch)
	}
	return ids(hits), nil
}

// Len is the number of vectors added.
func (g *Graph) Len() int { return len(g.g.levels) }

// Levels is the number of layers of the graph.
func (g *Graph) Levels() int { return g.g.maxLevel() + 1 }

// Memory is what a graph holds in memory, in bytes.
type Memory struct {
	Vectors int64 `json:"vectors"` // float32 vectors or SQ8 codes (and the SQ8 ranges)
	Graph   int64 `json:"graph"`   // levels, link lists and their slice headers
}

// Memory reports the bytes the graph's slabs use (their length, not spare capacity).
func (g *Graph) Memory() Memory { return g.g.memory() }

func (g *graph) memory() Memory {
	var m Memory
	if g.sq != nil {
		m.Vectors = int64(len(g.codes)) + int64(4*4*g.dim)
	} else {
		m.Vectors = 4 * int64(len(g.vecs))
	}
	m.Graph = int64(len(g.levels)) + 4*int64(len(g.links0)) + 4*int64(len(g.in0)) + int64(unsafe.Sizeof([]uint32(nil)))*int64(len(g.upper))
	for _, u := range g.upper {
		m.Graph += 4 * int64(len(u))
	}
	return m
}

// query checks v's length and returns it normalised.
func (g *Graph) query(v []float32) ([]float32, error) {
	if len(v) != g.g.dim {
		return nil, fmt.Errorf("%w: vector has %d dims, graph %d", ErrDimMismatch, len(v), g.g.dim)
	}
	u, ok := normalize(v)
	if !ok {
		return nil, fmt.Errorf("%w: vector is zero or not finite", ErrInvalidItem)
	}
	return u, nil
}

func ids(cs []cand) []uint32 {
	out := make([]uint32, len(cs))
	for i, c := range cs {
		out[i] = c.id
	}
	return out
}
