package index

import (
	"errors"
	"math"
	"slices"
	"strings"
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

// TestGraphAppendAll: a bulk append on several goroutines stores what Append stores, draws the
// same levels (the same graph after linking), and on a bad vector appends nothing.
func TestGraphAppendAll(t *testing.T) {
	vecs := synth.Clustered(3000, 32, 6, 1, 4)
	for _, compressed := range []bool{false, true} {
		build := func(bulk bool) *Graph {
			g := NewGraph(32, 8, 64, 1)
			if compressed {
				fetch := func(i uint32, dst []float32) bool { copy(dst, vecs[i]); return normalizeInto(dst, dst) }
				if err := g.Compress(vecs[:1000], fetch); err != nil {
					t.Fatal(err)
				}
			}
			if bulk {
				if err := g.AppendAll(vecs[:1700], 4); err != nil {
					t.Fatal(err)
				}
				if err := g.AppendAll(vecs[1700:], 3); err != nil {
					t.Fatal(err)
				}
			} else {
				for _, v := range vecs {
					if err := g.Append(v); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := g.Link(ctx, 1); err != nil {
				t.Fatal(err)
			}
			return g
		}
		one, bulk := build(false), build(true)
		if !slices.Equal(one.g.vecs, bulk.g.vecs) || !slices.Equal(one.g.codes, bulk.g.codes) ||
			!slices.Equal(one.g.levels, bulk.g.levels) || !slices.Equal(one.g.links0, bulk.g.links0) {
			t.Fatalf("compressed %v: AppendAll stored or linked otherwise than Append", compressed)
		}
		bad := slices.Clone(vecs[:600])
		bad[517] = make([]float32, 32) // zero: cannot be normalised
		n := bulk.Len()
		if err := bulk.AppendAll(bad, 4); !errors.Is(err, ErrInvalidItem) || !strings.Contains(err.Error(), "vector 517") {
			t.Fatalf("compressed %v: a zero vector gave %v", compressed, err)
		}
		if bulk.Len() != n || len(bulk.g.links0) != n*(bulk.g.m0+1) {
			t.Fatalf("compressed %v: a failed AppendAll left %d vectors, had %d", compressed, bulk.Len(), n)
		}
		if got, _ := bulk.Search(vecs[42], 1, 64); len(got) != 1 || got[0] != 42 {
			t.Fatalf("compressed %v: after a failed AppendAll vector 42's nearest is %v", compressed, got)
		}
	}
}
