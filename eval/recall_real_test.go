package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/bench"
)

// TestRealEmbeddingRecall measures HNSW recall@10 against exact search on real CNN embeddings (the
// index's own tests use synthetic vectors): Fashion-MNIST training images, unfiltered and under a
// 1% selective metadata filter. It embeds 20 000 images (minutes on 2 cores), so it runs only when
// LOOKALIKE_REAL_RECALL=1; the figures go to the README. LOOKALIKE_REAL_FVECS=DIR also writes the
// embeddings there as .fvecs (for `lookalike bench search` against the peers on real vectors).
func TestRealEmbeddingRecall(t *testing.T) {
	if os.Getenv("LOOKALIKE_REAL_RECALL") != "1" {
		t.Skip("set LOOKALIKE_REAL_RECALL=1 to embed 20k Fashion-MNIST images and measure recall")
	}
	const nBase, nQueries, k, buckets = 20000, 300, 10, 100
	ds, err := FashionMNIST("/usr/share/datasets/fashion-mnist", nBase, nQueries)
	if err != nil {
		t.Skipf("Fashion-MNIST not installed: %v", err)
	}
	ctx := context.Background()
	eng, err := newTestEngine()
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	embedAll := func(imgs []Image) [][]float32 {
		out := make([][]float32, len(imgs))
		const batch = 64
		for i := 0; i < len(imgs); i += batch {
			var in []embed.Image
			for _, im := range imgs[i:min(i+batch, len(imgs))] {
				b, err := im.load()
				if err != nil {
					t.Fatal(err)
				}
				in = append(in, embed.Image{Data: b})
			}
			embs, err := eng.Embed(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			for j, e := range embs {
				if e.Err != nil {
					t.Fatal(e.Err)
				}
				out[i+j] = e.Vector
			}
		}
		return out
	}
	start := time.Now()
	var baseImgs, queryImgs []Image
	for _, it := range ds.Database {
		baseImgs = append(baseImgs, it.Image)
	}
	for _, q := range ds.Queries {
		queryImgs = append(queryImgs, q.Image)
	}
	base, queries := embedAll(baseImgs), embedAll(queryImgs)
	t.Logf("embedded %d + %d images in %s", len(base), len(queries), time.Since(start).Round(time.Second))
	if dir := os.Getenv("LOOKALIKE_REAL_FVECS"); dir != "" {
		// Real embeddings for `lookalike bench search --base DIR/real-base.fvecs --queries DIR/real-queries.fvecs`.
		if err := bench.WriteFvecs(filepath.Join(dir, "real-base.fvecs"), base); err != nil {
			t.Fatal(err)
		}
		if err := bench.WriteFvecs(filepath.Join(dir, "real-queries.fvecs"), queries); err != nil {
			t.Fatal(err)
		}
	}

	// The index as lookalike serve configures it, without the exact shortcut.
	db, err := index.Open(t.TempDir(), &index.Options{ExactThreshold: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	col, err := db.CreateCollection("real", index.CollectionConfig{Fingerprint: eng.Info().Fingerprint, Dims: eng.Info().Dims, EfSearch: index.DefaultEfSearch})
	if err != nil {
		t.Fatal(err)
	}
	items := make([]index.Item, len(base))
	for i, v := range base {
		meta, _ := json.Marshal(map[string]any{"bucket": fmt.Sprintf("b%02d", i%buckets)})
		items[i] = index.Item{ID: fmt.Sprintf("f%05d", i), Vector: v, Metadata: meta}
	}
	start = time.Now()
	for i := 0; i < len(items); i += 500 {
		if err := col.Upsert(ctx, items[i:min(i+500, len(items))]...); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("built the graph of %d in %s", len(items), time.Since(start).Round(time.Second))

	// recall at ef (0 = the collection's default), and the mean time of one approximate search
	recall := func(ef int, filtered bool) (float64, time.Duration) {
		var sum float64
		var took time.Duration
		for qi, q := range queries {
			o := index.SearchOptions{K: k, Ef: ef}
			if filtered {
				f, err := index.ParseFilter(fmt.Sprintf(`bucket = "b%02d"`, qi%buckets))
				if err != nil {
					t.Fatal(err)
				}
				o.Filter = f
			}
			t0 := time.Now()
			approx, err := col.Search(ctx, q, o)
			took += time.Since(t0)
			if err != nil {
				t.Fatal(err)
			}
			o.Exact = true
			exact, err := col.Search(ctx, q, o)
			if err != nil {
				t.Fatal(err)
			}
			var a, e []string
			for _, r := range approx {
				a = append(a, r.ID)
			}
			for _, r := range exact {
				e = append(e, r.ID)
			}
			sum += Overlap(a, e, k)
		}
		return sum / float64(len(queries)), took / time.Duration(len(queries))
	}
	// The sweep behind index.DefaultEfSearch (its comment quotes it).
	for _, ef := range []int{16, 32, 48, 64, 96, 128} {
		plain, pt := recall(ef, false)
		filtered, ft := recall(ef, true)
		t.Logf("efSearch %3d: recall@10 %.4f unfiltered (%v/query), %.4f under a 1%% filter (%v/query)", ef, plain, pt.Round(time.Microsecond), filtered, ft.Round(time.Microsecond))
	}
	plain, _ := recall(0, false)
	filtered, _ := recall(0, true)
	t.Logf("real embeddings, %d vectors, default efSearch %d: recall@10 %.4f unfiltered, %.4f under a 1%% filter", len(base), index.DefaultEfSearch, plain, filtered)
	if plain < 0.98 || filtered < 0.95 {
		t.Fatalf("recall@10 %.4f unfiltered (want >= 0.98), %.4f under a 1%% filter (want >= 0.95)", plain, filtered)
	}
}
