package index

import (
	"errors"
	"math"
	"testing"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// TestGraph: the standalone core finds what brute force finds, numbers vectors in order and
// refuses vectors it cannot normalise or of the wrong length.
func TestGraph(t *testing.T) {
	vecs := synth.Clustered(600, 16, 4, 1, 3)
	g := NewGraph(16, 8, 64, 1)
	g.Reserve(len(vecs))
	for _, v := range vecs {
		if err := g.Add(v); err != nil {
			t.Fatal(err)
		}
	}
	if g.Len() != len(vecs) || g.Levels() < 1 {
		t.Fatalf("Len %d Levels %d", g.Len(), g.Levels())
	}
	got, err := g.Search(vecs[7], 1, 32)
	if err != nil || len(got) != 1 || got[0] != 7 {
		t.Errorf("a stored vector's nearest is %v (%v), want [7]", got, err)
	}
	exact, _ := g.Exact(vecs[7], 5)
	approx, _ := g.Search(vecs[7], 5, 64)
	if len(exact) != 5 || len(approx) != 5 {
		t.Errorf("k=5 gave %d exact, %d approximate", len(exact), len(approx))
	}
	nan := make([]float32, 16)
	nan[0] = float32(math.NaN())
	for name, c := range map[string]struct {
		v    []float32
		want error
	}{
		"short": {make([]float32, 3), ErrDimMismatch},
		"zero":  {make([]float32, 16), ErrInvalidItem},
		"nan":   {nan, ErrInvalidItem},
	} {
		if err := g.Add(c.v); !errors.Is(err, c.want) {
			t.Errorf("Add(%s) = %v, want %v", name, err, c.want)
		}
		if _, err := g.Search(c.v, 3, 10); !errors.Is(err, c.want) {
			t.Errorf("Search(%s) = %v, want %v", name, err, c.want)
		}
	}
	if g.Len() != len(vecs) {
		t.Errorf("refused vectors changed Len to %d", g.Len())
	}
}
