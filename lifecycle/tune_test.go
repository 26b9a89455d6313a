package lifecycle

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lookalike/lookalike/embed/project"
	"github.com/lookalike/lookalike/index"
)

func TestAppendStride(t *testing.T) {
	rows := []float32{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5}
	for _, tc := range []struct {
		name string
		keep int
		want []float32
	}{
		{"all", 6, rows},
		{"more than there are", 10, rows},
		{"half", 3, []float32{0, 0, 2, 2, 4, 4}},
		{"one", 1, []float32{0, 0}},
	} {
		if got := appendStride([]float32{9, 9}, rows, 2, 6, tc.keep); !slices.Equal(got, append([]float32{9, 9}, tc.want...)) {
			t.Errorf("%s: %v, want %v after the prefix", tc.name, got, tc.want)
		}
	}
}

// TestProjectionsStore: a stored projection is read back by name from the data file after a
// reopen; an unknown name and a corrupt record are ErrNoProjection.
func TestProjectionsStore(t *testing.T) {
	dir := t.TempDir()
	db, err := index.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]float32, 200*8)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	p, err := project.Learn(data, 8, project.Options{Dims: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := NewProjections(db).Put(p); err != nil {
		t.Fatal(err)
	}
	if err := db.SetState(projectionKey+"pw4:deadbeef", []byte("LKPW-not-a-projection")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = index.Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ps := NewProjections(db)
	got, err := ps.Get(p.Name())
	if err != nil || got.Name() != p.Name() || !slices.Equal(got.P, p.P) {
		t.Fatalf("read back: %v", err)
	}
	for _, name := range []string{"pw4:00000000", "pw4:deadbeef"} {
		if _, err := ps.Get(name); !errors.Is(err, ErrNoProjection) {
			t.Errorf("%s: %v, want ErrNoProjection", name, err)
		}
	}
}
