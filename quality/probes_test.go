package quality

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// vectorEmbedder reads a photo file holding "x y" as that vector, so probe scores can be computed by
// hand; any other content fails like a corrupt photo. (The real model is exercised by the api
// package's TestQualityLive.)
type vectorEmbedder struct{}

func (vectorEmbedder) Embed(_ context.Context, imgs []embed.Image) ([]embed.Embedding, error) {
	out := make([]embed.Embedding, len(imgs))
	for i, img := range imgs {
		f := strings.Fields(string(img.Data))
		if len(f) != 2 {
			out[i].Err = embed.ErrCorrupt
			continue
		}
		x, _ := strconv.ParseFloat(f[0], 32)
		y, _ := strconv.ParseFloat(f[1], 32)
		out[i].Vector = []float32{float32(x), float32(y)}
	}
	return out, nil
}

// TestProbes: precision@k and hit rate of a probe set against hand-computed values, with failed
// probes counted, the probe's own id excluded, and a manifest that appears later loaded on a later run.
func TestProbes(t *testing.T) {
	db := openTestDB(t)
	col, err := db.CreateCollection("cat", index.CollectionConfig{Fingerprint: "fp", Dims: 2})
	if err != nil {
		t.Fatal(err)
	}
	item := func(id string, x, y float32, group string) index.Item {
		return index.Item{ID: id, Vector: []float32{x, y}, Metadata: []byte(`{"group":"` + group + `"}`)}
	}
	if err := col.Upsert(context.Background(),
		item("a1", 1, 0, "A"), item("a2", 0.9, 0.1, "A"),
		item("b1", 0, 1, "B"), item("b2", 0.1, 0.9, "B"), item("b3", 0.8, 0.2, "B")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, body := range map[string]string{"pa": "1 0.05", "pb": "0.7 0.3", "pc": "0 1", "nogroup": "1 0", "broken": "not a photo"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// k=2. a1 (its id is a catalog item's, so a1 is excluded): a2 (A) b3 (B) → 1/2. pb: b3 (B) a2 (A)
	// → 1/2. pc: b1 b2, no group C in the catalog → 0. Precision (1/2+1/2+0)/3, hit rate 2/3.
	manifest := filepath.Join(dir, "shop.csv")
	csv := "id,path,group\na1,pa,A\npb,pb,B\npc,pc,C\nnogroup,nogroup,\nmissing,missing,A\nbroken,broken,B\n"
	if err := os.WriteFile(manifest, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	late := filepath.Join(dir, "late.csv") // written after the first run
	cfg := config.Default()
	cfg.Quality.Probes = config.Probes{Manifests: []string{manifest, late}, Collection: "cat", Interval: time.Hour, K: 2, GroupField: "group"}
	// Not started: the background loop would run the probes too, and this test counts runs.
	q, err := New(cfg, vectorEmbedder{}, db, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	q.now = clk.now

	q.RunProbes(context.Background())
	got := q.Summary().Probes
	p, ok := got["shop"]
	if !ok || len(got) != 1 {
		t.Fatalf("probe sets %+v, want shop only", got)
	}
	want := ProbeSummary{Collection: "cat", Probes: 3, Failed: 3, K: 2, Runs: 1, LastRun: clk.now()}
	if p.Collection != want.Collection || p.Probes != want.Probes || p.Failed != want.Failed || p.K != want.K ||
		p.Runs != want.Runs || !p.LastRun.Equal(want.LastRun) || p.LastError != "" {
		t.Fatalf("probe set %+v, want %+v", p, want)
	}
	if math.Abs(p.PrecisionAtK-1.0/3) > 1e-12 || math.Abs(p.HitRateAtK-2.0/3) > 1e-12 {
		t.Fatalf("precision %v hit rate %v, want 1/3 and 2/3", p.PrecisionAtK, p.HitRateAtK)
	}
	if g := metricValue(t, q.m.probePrecision.WithLabelValues("shop")); math.Abs(g-1.0/3) > 1e-12 {
		t.Fatalf("probe precision gauge %v", g)
	}
	if g := metricValue(t, q.m.probeLastRun.WithLabelValues("shop")); g != float64(clk.now().Unix()) {
		t.Fatalf("probe last run gauge %v", g)
	}

	// The late manifest appears: the next run loads it and runs both sets.
	if err := os.WriteFile(late, []byte("id,path,group\npb,pb,B\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clk.set(time.Hour)
	q.RunProbes(context.Background())
	got = q.Summary().Probes
	if got["shop"].Runs != 2 || got["late"].Runs != 1 || got["late"].PrecisionAtK != 0.5 {
		t.Fatalf("after the late manifest: %+v", got)
	}
	if g := metricValue(t, q.m.probeRuns.WithLabelValues("shop")); g != 2 {
		t.Fatalf("probe runs counter %v, want 2", g)
	}
}

func TestMetadataField(t *testing.T) {
	tests := []struct {
		meta, want string
	}{
		{`{"group":"shoes"}`, "shoes"},
		{`{"group":12}`, "12"},
		{`{"group":1.5}`, "1.5"},
		{`{"group":true}`, "true"},
		{`{"group":null}`, ""},
		{`{"other":"x"}`, ""},
		{`not json`, ""},
		{``, ""},
	}
	for _, tt := range tests {
		if got := metadataField([]byte(tt.meta), "group"); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.meta, got, tt.want)
		}
	}
}

// TestProbesEmbedderError: an engine failure leaves the set unloaded, to be retried.
func TestProbesEmbedderError(t *testing.T) {
	db := openTestDB(t)
	if _, err := db.CreateCollection("cat", index.CollectionConfig{Fingerprint: "fp", Dims: 2}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	manifest := filepath.Join(dir, "s.csv")
	if err := os.WriteFile(filepath.Join(dir, "p"), []byte("1 0"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest, []byte("id,path,group\np,p,A\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Quality.Probes = config.Probes{Manifests: []string{manifest}, Collection: "cat", Interval: time.Hour, K: 2, GroupField: "group"}
	q, err := New(cfg, failingEmbedder{}, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	q.RunProbes(context.Background())
	if s := q.Summary(); len(s.Probes) != 0 {
		t.Fatalf("set loaded despite the engine failing: %+v", s.Probes)
	}
	q.eng = vectorEmbedder{}
	q.RunProbes(context.Background())
	if p := q.Summary().Probes["s"]; p.Runs != 1 || p.Probes != 1 {
		t.Fatalf("set not retried: %+v", p)
	}
}

type failingEmbedder struct{}

func (failingEmbedder) Embed(context.Context, []embed.Image) ([]embed.Embedding, error) {
	return nil, fmt.Errorf("engine: %w", embed.ErrClosed)
}
