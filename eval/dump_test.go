package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/bench"
	"github.com/lookalike/lookalike/rerank"
)

// listEmbedder maps an image whose bytes are comma-separated numbers to that vector.
type listEmbedder struct{ dims int }

func (e listEmbedder) Embed(_ context.Context, imgs []embed.Image) ([]embed.Embedding, error) {
	out := make([]embed.Embedding, len(imgs))
	for i, im := range imgs {
		for _, f := range strings.Split(string(im.Data), ",") {
			x, err := strconv.ParseFloat(f, 32)
			if err != nil {
				out[i].Err = embed.ErrCorrupt
				break
			}
			out[i].Vector = append(out[i].Vector, float32(x))
		}
	}
	return out, nil
}

func (e listEmbedder) Info() embed.Info { return embed.Info{Fingerprint: "list-test", Dims: e.dims} }

// clusteredOxford is an Oxford-style dataset of overlapping clusters: 15 groups of 20 items in
// 16 dimensions, and four queries from outside the database per group, near its centre, whose
// positives are its group (its first two items are junk for the first group's queries), so that
// re-ranking has neighbourhoods to work with.
func clusteredOxford() *Dataset {
	const groups, per, queries, dims = 15, 20, 4, 16
	rng := rand.New(rand.NewPCG(13, 2017))
	point := func(centre []float64, spread float64) []byte {
		parts := make([]string, dims)
		for d := range parts {
			parts[d] = strconv.FormatFloat(centre[d]+spread*rng.NormFloat64(), 'g', 7, 32)
		}
		return []byte(strings.Join(parts, ","))
	}
	ds := &Dataset{Name: "clusters", OxfordAP: true}
	for g := range groups {
		centre := make([]float64, dims)
		for d := range centre {
			centre[d] = rng.NormFloat64()
		}
		positives, junk := map[string]bool{}, map[string]bool{}
		for i := range per {
			id := fmt.Sprintf("g%02d-%02d", g, i)
			ds.Database = append(ds.Database, Item{ID: id, Image: Image{Data: point(centre, 1.0)}})
			if g == 0 && i < 2 {
				junk[id] = true
			} else {
				positives[id] = true
			}
		}
		for j := range queries {
			ds.Queries = append(ds.Queries, Query{ID: fmt.Sprintf("q%02d-%d", g, j), Image: Image{Data: point(centre, 0.8)},
				Positives: positives, Junk: junk})
		}
	}
	return ds
}

// TestDumpVectors: the dump holds every item's and query's vector as the embedder gave it and
// each query's positives and junk, once per embedding variant.
func TestDumpVectors(t *testing.T) {
	ds := clusteredOxford()
	dir := filepath.Join(t.TempDir(), "dump")
	_, err := Run(context.Background(), ds, []Config{{}, {Rerank: rerank.ModeKR}}, Options{
		Engine:  func(context.Context, spec.Model) (Embedder, error) { return listEmbedder{16}, nil },
		TempDir: t.TempDir(), SkipExact: true, DumpDir: dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(names) != 1 || filepath.Base(names[0]) != "variant-1.json" {
		t.Fatalf("dump files %v, want one variant-1.json (both configurations share the vectors)", names)
	}
	d := readDump(t, names[0])
	if len(d.Database) != len(ds.Database) || len(d.Queries) != len(ds.Queries) || !d.OxfordAP || d.Depth != len(ds.Database) {
		t.Fatalf("dump has %d items, %d queries, oxford_ap %v, depth %d; want %d, %d, true, %d",
			len(d.Database), len(d.Queries), d.OxfordAP, d.Depth, len(ds.Database), len(ds.Queries), len(ds.Database))
	}
	embedded, _ := listEmbedder{}.Embed(context.Background(), []embed.Image{{Data: ds.Database[7].Image.Data}, {Data: ds.Queries[5].Image.Data}})
	if it := d.Database[7]; it.ID != ds.Database[7].ID || !slices.Equal(it.Vector, embedded[0].Vector) {
		t.Errorf("item %s: vector %v, want %v", it.ID, it.Vector, embedded[0].Vector)
	}
	if q := d.Queries[5]; q.ID != "q01-1" || !slices.Equal(q.Vector, embedded[1].Vector) {
		t.Errorf("query %s: vector %v, want %v", q.ID, q.Vector, embedded[1].Vector)
	}
	if q := d.Queries[0]; !slices.Equal(q.Junk, []string{"g00-00", "g00-01"}) || len(q.Positives) != 18 || q.Positives[0] != "g00-02" {
		t.Errorf("query q00-0: junk %v, positives %v; want g00-00 and g00-01, then the 18 others in order", q.Junk, q.Positives)
	}
}

func readDump(t *testing.T, path string) Dump {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d Dump
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}

// TestRerankReferenceScript holds the index's re-ranking, as the eval measures it, to the dense
// reference in scripts/rerank-reference (the paper's algorithm, each query placed alone among
// the items) on the same dumped vectors: every mode's mAP must agree.
func TestRerankReferenceScript(t *testing.T) {
	if err := exec.Command(bench.DebianPython, "-c", "import numpy").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3 with numpy is needed (scripts/setup --test installs python3-numpy): %v", err)
		}
		t.Skipf("python3 with numpy not installed (scripts/setup --test): %v", err)
	}
	ds := clusteredOxford()
	dir := filepath.Join(t.TempDir(), "dump")
	modes := []rerank.Mode{rerank.ModeNone, rerank.ModeQE, rerank.ModeKR, rerank.ModeQEKR}
	var cfgs []Config
	for _, m := range modes {
		cfgs = append(cfgs, Config{Rerank: m})
	}
	reports, err := Run(context.Background(), ds, cfgs, Options{
		Engine:  func(context.Context, spec.Model) (Embedder, error) { return listEmbedder{16}, nil },
		TempDir: t.TempDir(), DumpDir: dir,
		// two goroutines link each 256-item batch, as on the 2-core machine: the lists of items
		// linked side by side must still be the exact ones (index: linkedBeside)
		Index: index.Options{BuildWorkers: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bench.DebianPython, "-B", "../scripts/rerank-reference", "--json", "--probes", "alone",
		filepath.Join(dir, "variant-1.json")).Output()
	if err != nil {
		t.Fatalf("rerank-reference: %v\n%s", err, out)
	}
	var ref map[string]map[string]float64
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatalf("rerank-reference printed %q: %v", out, err)
	}
	for i, m := range modes {
		got, want := reports[i].Exact.MAP, ref[m.String()]["alone"]
		t.Logf("%-6s eval exact %.4f hnsw %.4f, reference %.4f", m, got, reports[i].MAP, want)
		if math.Abs(got-want) > 0.002 {
			t.Errorf("%s: eval mAP %.4f (exact search), reference %.4f", m, got, want)
		}
	}
	if reports[2].Exact.MAP-reports[0].Exact.MAP < 0.01 {
		t.Errorf("kr mAP %.4f, none %.4f: the fixture gives re-ranking nothing to do", reports[2].Exact.MAP, reports[0].Exact.MAP)
	}
}
