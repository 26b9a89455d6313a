package intel

import (
	"fmt"
	"math"

	"github.com/lookalike/lookalike/index"
)

// Example is one example of a recommendation: a stored item (ID) or a raw vector (Vector), and
// how much it counts (Weight > 0; 0 means 1).
type Example struct {
	ID     string
	Vector []float32
	Weight float64
}

// MaxExamples bounds the positive and negative examples of one recommendation together: each
// costs a vector read, and a longer list says little more than its average.
const MaxExamples = 64

// RecommendQuery is the query vector of a recommendation, by Qdrant's "average_vector" strategy:
// with p the weighted mean of the positive examples and n that of the negative ones (each example
// normalised first, so a weight is the only thing that makes one count more), the query is
// p + (p − n) = 2p − n, normalised; without negatives it is p. Searching with it ranks items like
// the positives and unlike the negatives (Weaviate's nearObject with moveAwayFrom is the same
// idea). Stored vectors are read from memory; raw vectors must have dims components.
//
// ErrInvalidExamples for no positive example, too many examples, a bad weight or vector, or
// examples that cancel out; index.ErrNotFound (wrapped, naming the id) for an unknown item.
func RecommendQuery(col *index.Collection, dims int, positive, negative []Example) ([]float32, error) {
	switch {
	case len(positive) == 0:
		return nil, fmt.Errorf("%w: at least one positive example is needed", ErrInvalidExamples)
	case len(positive)+len(negative) > MaxExamples:
		return nil, fmt.Errorf("%w: %d examples, at most %d", ErrInvalidExamples, len(positive)+len(negative), MaxExamples)
	}
	p, err := weightedMean(col, dims, positive, "positive")
	if err != nil {
		return nil, err
	}
	q := p
	if len(negative) > 0 {
		n, err := weightedMean(col, dims, negative, "negative")
		if err != nil {
			return nil, err
		}
		q = make([]float64, dims)
		for i := range q {
			q[i] = 2*p[i] - n[i]
		}
	}
	out, ok := unit(q)
	if !ok {
		return nil, fmt.Errorf("%w: the examples cancel out (opposite examples weigh the same)", ErrInvalidExamples)
	}
	return out, nil
}

// weightedMean averages the examples' unit vectors by weight.
func weightedMean(col *index.Collection, dims int, examples []Example, kind string) ([]float64, error) {
	sum := make([]float64, dims)
	var total float64
	for i, ex := range examples {
		w := ex.Weight
		if w == 0 {
			w = 1
		}
		if !(w > 0) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("%w: %s example %d: weight must be a positive number, got %v", ErrInvalidExamples, kind, i, ex.Weight)
		}
		v, err := exampleVector(col, dims, ex, kind, i)
		if err != nil {
			return nil, err
		}
		for j, x := range v {
			sum[j] += w * x
		}
		total += w
	}
	for j := range sum {
		sum[j] /= total
	}
	return sum, nil
}

// exampleVector is an example's unit vector.
func exampleVector(col *index.Collection, dims int, ex Example, kind string, i int) ([]float64, error) {
	switch {
	case ex.ID != "" && ex.Vector != nil:
		return nil, fmt.Errorf("%w: %s example %d names both an id and a vector", ErrInvalidExamples, kind, i)
	case ex.ID != "":
		v, err := col.Vector(ex.ID)
		if err != nil {
			return nil, fmt.Errorf("%s example %q: %w", kind, ex.ID, err)
		}
		return widen(v), nil
	case len(ex.Vector) != dims:
		return nil, fmt.Errorf("%w: %s example %d: the vector has %d components, the collection's have %d", ErrInvalidExamples, kind, i, len(ex.Vector), dims)
	}
	v, ok := unit(widen(ex.Vector))
	if !ok {
		return nil, fmt.Errorf("%w: %s example %d: the vector has a zero norm or a non-finite component", ErrInvalidExamples, kind, i)
	}
	return widen(v), nil
}

func widen(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// unit scales v to length 1, or ok=false for a zero or non-finite norm.
func unit(v []float64) (out []float32, ok bool) {
	var s float64
	for _, x := range v {
		s += x * x
	}
	if !(s > 0) || math.IsInf(s, 0) {
		return nil, false
	}
	inv := 1 / math.Sqrt(s)
	out = make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x * inv)
	}
	return out, true
}
