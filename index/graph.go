package index

import (
	"context"
	"fmt"
	"unsafe"
)

// Graph is the HNSW core on its own: in memory, without storage, filters or locking, over vectors
// numbered 0, 1, ... in the order they are added. Collections wrap the same core; Graph exists so
// that benchmarks (internal/bench, `lookalike bench search`) can compare the algorithm like for like
// with other in-memory indexes. It is not safe for concurrent use.
type Graph struct {
	g      *graph
	linked int // vectors 0..linked-1 are linked
}

// NewGraph returns an empty graph of dim-dimensional vectors with at most m links per node on the
// upper layers (2m on layer 0) and an insertion beam of efConstruction; seed fixes the levels drawn.
func NewGraph(dim, m, efConstruction int, seed int64) *Graph {
	return &Graph{g: newGraph(dim, m, efConstruction, 0, seed)}
}

// Reserve makes room for n vectors in all, so that a large build does not regrow its slab.
func (g *Graph) Reserve(n int) { g.g.reserve(n) }

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
	g.g.setVector(uint32(len(g.g.levels)), u)
	return nil
}

// Link links the appended vectors into the graph, in the order they were appended. workers is how
// many goroutines may do it (0: GOMAXPROCS); the build is serial for now. On ctx's end it returns
// ctx.Err() with the vectors linked so far usable.
func (g *Graph) Link(ctx context.Context, workers int) error {
	for n := len(g.g.levels); g.linked < n; g.linked++ {
		if g.linked%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		g.g.insert(uint32(g.linked))
	}
	return nil
}

// Search returns the numbers of the k nearest vectors to q by cosine, best first, with a beam of
// max(ef, k). Errors as Add.
func (g *Graph) Search(q []float32, k, ef int) ([]uint32, error) {
	u, err := g.query(q)
	if err != nil {
		return nil, err
	}
	return ids(g.g.search(u, k, ef, nil)), nil
}

// Exact is Search by brute force: the ground truth recall is measured against.
func (g *Graph) Exact(q []float32, k int) ([]uint32, error) {
	u, err := g.query(q)
	if err != nil {
		return nil, err
	}
	return ids(g.g.exact(u, k, nil, nil)), nil
}

// Len is the number of vectors added.
func (g *Graph) Len() int { return len(g.g.levels) }

// Levels is the number of layers of the graph.
func (g *Graph) Levels() int { return g.g.maxLevel + 1 }

// Memory is what a graph holds in memory, in bytes.
type Memory struct {
	Vectors int64 `json:"vectors"` // the stored vectors
	Graph   int64 `json:"graph"`   // levels, link lists and their slice headers
}

// Memory reports the bytes the graph's slabs use (their length, not spare capacity).
func (g *Graph) Memory() Memory { return g.g.memory() }

func (g *graph) memory() Memory {
	m := Memory{Vectors: 4 * int64(len(g.vecs))}
	m.Graph = int64(len(g.levels)) + 4*int64(len(g.links0)) + int64(unsafe.Sizeof([]uint32(nil)))*int64(len(g.upper))
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
