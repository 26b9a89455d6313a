package index

import "fmt"

// Graph is the HNSW core on its own: in memory, without storage, filters or locking, over vectors
// numbered 0, 1, ... in the order they are added. Collections wrap the same core; Graph exists so
// that benchmarks (internal/bench, `lookalike bench search`) can compare the algorithm like for like
// with other in-memory indexes. It is not safe for concurrent use.
type Graph struct {
	g *graph
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
	u, err := g.query(v)
	if err != nil {
		return err
	}
	id := uint32(len(g.g.levels))
	g.g.setVector(id, u)
	g.g.insert(id)
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
