package embed

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/lookalike/lookalike/embed/project"
)

// TestRegionsAndProjection: Image.Regions returns every region of every scale (their per-scale sum
// gives the vector), a projection learned from them is applied per region inside the engine exactly
// as project.Pool applies it to the returned regions, and the same object still scores above another.
func TestRegionsAndProjection(t *testing.T) {
	e := regionalEngine(t)
	names := []string{"ukbench00100.jpg", "ukbench00101.jpg", "ukbench00102.jpg", "ukbench00103.jpg", "ukbench00004.jpg", "ukbench00005.jpg"}
	imgs := make([]Image, len(names))
	for i, n := range names {
		imgs[i] = Image{Data: readPhoto(t, n), Profile: "ms317", Regions: true}
	}
	res, err := e.Embed(context.Background(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	var train []float32
	for i, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		total := 0
		for _, c := range r.RegionCounts {
			total += c
		}
		if len(r.RegionCounts) != 2 || total < 10 || len(r.Regions) != total*1280 {
			t.Fatalf("%s: region counts %v, %d values", names[i], r.RegionCounts, len(r.Regions))
		}
		train = append(train, r.Regions...)
	}
	proj, err := project.Learn(train, 1280, project.Options{Dims: 64})
	if err != nil {
		t.Fatal(err)
	}
	vecs := make([][]float32, len(names))
	for i := range imgs {
		imgs[i].Regions, imgs[i].Projection = false, proj
		r := embedOne(t, e, imgs[i])
		want := make([]float32, proj.Dims)
		if err := proj.Pool(want, res[i].Regions, res[i].RegionCounts, nil); err != nil {
			t.Fatal(err)
		}
		if len(r.Vector) != proj.Dims || r.Regions != nil {
			t.Fatalf("%d dims, %d region values: want %d and none", len(r.Vector), len(r.Regions), proj.Dims)
		}
		for k := range want {
			if math.Abs(float64(r.Vector[k]-want[k])) > 1e-4 {
				t.Fatalf("%s dim %d: engine %g, project.Pool %g", names[i], k, r.Vector[k], want[k])
			}
		}
		vecs[i] = r.Vector
	}
	if r, err := e.Embed(context.Background(), []Image{{Data: imgs[0].Data, Profile: "fast", Projection: proj}}); err != nil || !errors.Is(r[0].Err, ErrProfile) {
		t.Errorf("projection under the fast profile: %v %v, want ErrProfile", err, r[0].Err)
	}
	if cs, co := cosine(vecs[0], vecs[1]), cosine(vecs[0], vecs[4]); cs <= co {
		t.Errorf("projected: same object %.3f <= other object %.3f", cs, co)
	}
}
