package eval

import (
	"context"
	"errors"
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/internal/locate"
)

// angleEmbedder maps an image whose bytes are a decimal angle in degrees to the unit vector at that
// angle, so cosine rankings can be worked out by hand.
type angleEmbedder struct{}

func (angleEmbedder) Embed(_ context.Context, imgs []embed.Image) ([]embed.Embedding, error) {
	out := make([]embed.Embedding, len(imgs))
	for i, im := range imgs {
		deg, err := strconv.ParseFloat(string(im.Data), 64)
		if err != nil {
			out[i].Err = embed.ErrCorrupt
			continue
		}
		r := deg * math.Pi / 180
		out[i].Vector = []float32{float32(math.Cos(r)), float32(math.Sin(r))}
	}
	return out, nil
}

func (angleEmbedder) Info() embed.Info { return embed.Info{Fingerprint: "angle-test", Dims: 2} }

// TestRunHandComputed checks the whole pipeline (embedding, temporary HNSW index, ranking, scoring)
// on 8 items whose rankings are worked out by hand:
//
//	a0=0° a1=9° a2=20° b0=27° a3=41° b1=60° b2=71° b3=83°
//
// Rankings (query itself first, UKBench convention), R = same group:
//
//	a0: a0 a1 a2 b0 a3 …  R R R N R   N-S 3  AP (1+1+1+4/5)/4
//	a1: a1 a0 a2 b0 a3 …  R R R N R   N-S 3  AP (1+1+1+4/5)/4
//	a2: a2 b0 a1 a0 a3 …  R N R R R   N-S 3  AP (1+2/3+3/4+4/5)/4
//	a3: a3 b0 b1 a2 b2 a1 a0  R N N R N R R   N-S 2  AP (1+2/4+3/6+4/7)/4
//	b0: b0 a2 a3 a1 a0 b1 b2 b3  R N N N N R R R   N-S 1  AP (1+2/6+3/7+4/8)/4
//	b1: b1 b2 a3 b3 b0  R R N R R   N-S 3  AP (1+1+3/4+4/5)/4
//	b2: b2 b1 b3 a3 b0  R R R N R   N-S 3  AP (1+1+1+4/5)/4
//	b3: b3 b2 b1 a3 b0  R R R N R   N-S 3  AP (1+1+1+4/5)/4
func TestRunHandComputed(t *testing.T) {
	angles := map[string]string{"a0": "0", "a1": "9", "a2": "20", "a3": "41", "b0": "27", "b1": "60", "b2": "71", "b3": "83"}
	ds := &Dataset{Name: "fixture", IncludeSelf: true, NS: true}
	for _, id := range []string{"a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3"} {
		ds.Database = append(ds.Database, Item{ID: id, Image: Image{Data: []byte(angles[id])}, Group: id[:1]})
		ds.Queries = append(ds.Queries, Query{ID: id, Self: id, Group: id[:1]})
	}
	ap := func(ranks ...float64) float64 {
		s := 0.0
		for i, r := range ranks {
			s += float64(i+1) / r
		}
		return s / 4
	}
	aps := []float64{
		ap(1, 2, 3, 5), ap(1, 2, 3, 5), ap(1, 3, 4, 5), ap(1, 4, 6, 7),
		ap(1, 6, 7, 8), ap(1, 2, 4, 5), ap(1, 2, 3, 5), ap(1, 2, 3, 5),
	}
	wantMAP := 0.0
	for _, a := range aps {
		wantMAP += a / 8
	}
	if !near(wantMAP, 0.8375) {
		t.Fatalf("hand computation: mAP %v, want 0.8375", wantMAP)
	}
	wantNS := (3 + 3 + 3 + 2 + 1 + 3 + 3 + 3) / 8.0
	reports, err := Run(context.Background(), ds, []Config{{}, {Ef: 1}}, Options{
		Engine:  func(context.Context, spec.Model) (Embedder, error) { return angleEmbedder{}, nil },
		TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reports {
		for name, m := range map[string]*Metrics{"hnsw": &r.Metrics, "exact": r.Exact} {
			if !near(m.MAP, 0.8375) {
				t.Errorf("%s %s: mAP %v, want 0.8375", r.Config.Label, name, m.MAP)
			}
			if m.NSScore == nil || !near(*m.NSScore, wantNS) {
				t.Errorf("%s %s: N-S %v, want %v", r.Config.Label, name, m.NSScore, wantNS)
			}
			if got, want := m.PrecisionAtK["4"], 21.0/32; !near(got, want) {
				t.Errorf("%s %s: precision@4 %v, want %v", r.Config.Label, name, got, want)
			}
			if got := m.PrecisionAtK["1"]; got != 1 {
				t.Errorf("%s %s: precision@1 %v, want 1 (the query itself)", r.Config.Label, name, got)
			}
			if got, want := m.RecallAtK["10"], 1.0; got != want {
				t.Errorf("%s %s: recall@10 %v, want %v", r.Config.Label, name, got, want)
			}
		}
	}
}

// TestRunLeaveOneOut: without IncludeSelf the query is excluded and its group has 3 positives.
func TestRunLeaveOneOut(t *testing.T) {
	ds := &Dataset{Name: "loo", KNN: true}
	for i, deg := range []string{"0", "10", "100", "110"} {
		id := "i" + deg
		g := []string{"x", "x", "y", "y"}[i]
		ds.Database = append(ds.Database, Item{ID: id, Image: Image{Data: []byte(deg)}, Group: g})
		ds.Queries = append(ds.Queries, Query{ID: id, Self: id, Group: g})
	}
	ds.Queries = append(ds.Queries, Query{ID: "q", Image: Image{Data: []byte("52")}, Group: "x"}) // nearer 10° than 100°
	reports, err := Run(context.Background(), ds, nil, Options{
		Engine: func(context.Context, spec.Model) (Embedder, error) { return angleEmbedder{}, nil },
		Ks:     []int{1, 2}, KNN: 1, TempDir: t.TempDir(), SkipExact: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	m := reports[0].Metrics
	if got := m.PrecisionAtK["1"]; got != 1 {
		t.Errorf("precision@1 = %v, want 1", got)
	}
	// The four items rank their one group-mate first; q (group x, 2 positives) ranks i10, i100, i0.
	wantMAP2 := (4*1 + (1.0/1)/2) / 5
	if got := m.MAPAtK["2"]; !near(got, wantMAP2) {
		t.Errorf("mAP@2 = %v, want %v", got, wantMAP2)
	}
	if m.KNNAccuracy == nil || *m.KNNAccuracy != 1 {
		t.Errorf("k-NN accuracy = %v, want 1", m.KNNAccuracy)
	}
}

// newTestEngine starts the default model on the CPU with its files resolved as cmd/lookalike
// resolves them: embed itself searches no paths.
func newTestEngine() (*embed.Engine, error) {
	o := embed.Options{Device: "cpu", RuntimeLibrary: locate.RuntimeLibrary("")}
	var err error
	if o.ModelPath, o.LabelsPath, err = locate.ModelFiles(spec.DefaultModel()); err != nil {
		return nil, err
	}
	return embed.New(context.Background(), o)
}

// TestUKBenchRealModel runs the default model on the shared UKBench subset, which simple CNN
// features solve (N-S 4.0).
func TestUKBenchRealModel(t *testing.T) {
	dir, err := locate.Dir("ukbench", locate.DatasetDirs())
	if err != nil {
		t.Skipf("UKBench subset not found: %v", err)
	}
	ds, err := UKBench(dir)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := newTestEngine()
	if err != nil {
		if errors.Is(err, locate.ErrNotFound) && os.Getenv("CI") == "" {
			t.Skipf("model not installed (run scripts/setup): %v", err)
		}
		t.Fatal(err)
	}
	defer eng.Close()
	reports, err := Run(context.Background(), ds, nil, Options{
		Spec:   spec.DefaultModel(),
		Engine: func(context.Context, spec.Model) (Embedder, error) { return eng, nil },
		Ks:     []int{1, 4}, TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := reports[0]
	if r.Queries != 140 || r.Items != 149 || r.Failed != 0 {
		t.Fatalf("queries %d items %d failed %d, want 140/149/0", r.Queries, r.Items, r.Failed)
	}
	if *r.NSScore < 3.9 || *r.Exact.NSScore < 3.9 {
		t.Errorf("N-S score hnsw %.3f exact %.3f, want >= 3.9", *r.NSScore, *r.Exact.NSScore)
	}
}
