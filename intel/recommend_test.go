package intel

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/lookalike/lookalike/index"
)

func TestRecommendQuery(t *testing.T) {
	col := newCollection(t, 3)
	if err := col.Upsert(context.Background(),
		index.Item{ID: "x", Vector: []float32{2, 0, 0}},
		index.Item{ID: "y", Vector: []float32{0, 1, 0}},
		index.Item{ID: "z", Vector: []float32{0, 0, 5}}); err != nil {
		t.Fatal(err)
	}
	s := float32(1 / math.Sqrt(2))
	for _, tc := range []struct {
		name     string
		pos, neg []Example
		want     []float32
		err      error
	}{
		{"one positive is itself", []Example{{ID: "x"}}, nil, []float32{1, 0, 0}, nil},
		{"the mean of two", []Example{{ID: "x"}, {ID: "y"}}, nil, []float32{s, s, 0}, nil},
		{"weights", []Example{{ID: "x", Weight: 3}, {Vector: []float32{0, 9, 0}, Weight: 1}}, nil, []float32{0.9486833, 0.31622776, 0}, nil},
		// 2p − n with p = x, n = z: (2, 0, −1) normalised.
		{"away from a negative", []Example{{ID: "x"}}, []Example{{ID: "z"}}, []float32{0.8944272, 0, -0.4472136}, nil},
		{"no positive", nil, []Example{{ID: "x"}}, nil, ErrInvalidExamples},
		{"unknown id", []Example{{ID: "nope"}}, nil, nil, index.ErrNotFound},
		{"id and vector", []Example{{ID: "x", Vector: []float32{1, 0, 0}}}, nil, nil, ErrInvalidExamples},
		{"negative weight", []Example{{ID: "x", Weight: -1}}, nil, nil, ErrInvalidExamples},
		{"NaN weight", []Example{{ID: "x", Weight: math.NaN()}}, nil, nil, ErrInvalidExamples},
		{"short vector", []Example{{Vector: []float32{1, 0}}}, nil, nil, ErrInvalidExamples},
		{"zero vector", []Example{{Vector: []float32{0, 0, 0}}}, nil, nil, ErrInvalidExamples},
		{"cancel out", []Example{{ID: "x"}, {Vector: []float32{-1, 0, 0}}}, nil, nil, ErrInvalidExamples},
		{"too many", make([]Example, MaxExamples+1), nil, nil, ErrInvalidExamples},
	} {
		got, err := RecommendQuery(col, 3, tc.pos, tc.neg)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.err)
			continue
		}
		for i := range tc.want {
			if math.Abs(float64(got[i]-tc.want[i])) > 1e-6 {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
				break
			}
		}
	}
}
