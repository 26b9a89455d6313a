package eval

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
)

// regionEmbedder gives the image whose bytes are "g<group>-<n>" three 32-d regions in one scale:
// a group direction plus noise. It serves Image.Regions and Image.Projection as the engine does,
// and counts what it was asked for.
type regionEmbedder struct {
	mu                  sync.Mutex
	withRegions, projed int
}

func (r *regionEmbedder) regions(id string) []float32 {
	g, _ := strconv.Atoi(strings.TrimPrefix(strings.Split(id, "-")[0], "g"))
	rng := rand.New(rand.NewPCG(uint64(len(id)), uint64(strings.Count(id, "")+int(id[len(id)-1]))))
	out := make([]float32, 3*32)
	for k := range out {
		out[k] = float32(rng.NormFloat64()) * 0.3
		if k%32 == g || k%32 == g+8 {
			out[k] += 2
		}
	}
	return out
}

func (r *regionEmbedder) Embed(_ context.Context, imgs []embed.Image) ([]embed.Embedding, error) {
	out := make([]embed.Embedding, len(imgs))
	for i, im := range imgs {
		regs := r.regions(string(im.Data))
		r.mu.Lock()
		if im.Regions {
			r.withRegions++
		}
		if im.Projection != nil {
			r.projed++
		}
		r.mu.Unlock()
		if im.Projection != nil {
			v := make([]float32, im.Projection.Dims)
			if err := im.Projection.Pool(v, regs, []int{3}, nil); err != nil {
				return nil, err
			}
			out[i].Vector = v
			continue
		}
		v := make([]float32, 32)
		for k, x := range regs {
			v[k%32] += x
		}
		out[i].Vector = v
		if im.Regions {
			out[i].Regions, out[i].RegionCounts = regs, []int{3}
		}
	}
	return out, nil
}

func (r *regionEmbedder) Info() embed.Info { return embed.Info{Fingerprint: "regions-test", Dims: 32} }

// TestRunProjection: a projection is learned from the database's regions only (a sample of them
// when ProjectSample is below the database size, then the database is embedded through it), the
// queries go through the engine's projection, vectors have the projection's dimension and the
// model names it.
func TestRunProjection(t *testing.T) {
	ds := &Dataset{Name: "fixture"}
	for g := 0; g < 8; g++ {
		for n := 0; n < 4; n++ {
			id := "g" + strconv.Itoa(g) + "-" + strconv.Itoa(n)
			ds.Database = append(ds.Database, Item{ID: id, Image: Image{Data: []byte(id)}, Group: strconv.Itoa(g)})
		}
		q := "g" + strconv.Itoa(g) + "-q"
		ds.Queries = append(ds.Queries, Query{ID: q, Image: Image{Data: []byte(q)}, Group: strconv.Itoa(g)})
	}
	tests := []struct {
		name          string
		project       string
		sample        int
		regions, proj int // images asked for regions, through a projection
	}{
		{"whole database learned", "pw16", 0, 32, 8},
		{"sample of 20, then the database", "pw16", 20, 20, 32 + 8},
		{"plain PCA", "pca16", 0, 32, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &regionEmbedder{}
			reports, err := Run(context.Background(), ds, []Config{{Project: tc.project}}, Options{
				Engine:        func(context.Context, spec.Model) (Embedder, error) { return e, nil },
				TempDir:       t.TempDir(),
				ProjectSample: tc.sample,
			})
			if err != nil {
				t.Fatal(err)
			}
			r := reports[0]
			if !strings.HasPrefix(r.Model, "regions-test+"+tc.project+":") || r.Failed != 0 {
				t.Errorf("model %q, failed %d", r.Model, r.Failed)
			}
			if e.withRegions != tc.regions || e.projed != tc.proj {
				t.Errorf("%d images asked for regions, %d projected; want %d, %d", e.withRegions, e.projed, tc.regions, tc.proj)
			}
			if r.MAP < 0.9 {
				t.Errorf("mAP %.3f, want >= 0.9 (groups are far apart)", r.MAP)
			}
		})
	}
	e := &regionEmbedder{}
	reports, err := Run(context.Background(), ds, []Config{{Project: "none"}}, Options{
		Engine:  func(context.Context, spec.Model) (Embedder, error) { return e, nil },
		TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if reports[0].Model != "regions-test" || e.withRegions+e.projed != 0 {
		t.Errorf("project=none: model %q, %d/%d images asked for regions/projected", reports[0].Model, e.withRegions, e.projed)
	}
	if err := (Config{Project: "pw16", Profile: "fast"}).Validate(); err == nil {
		t.Error("a projection under the fast profile validated")
	}
}
