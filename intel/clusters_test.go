package intel

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/bench/synth"
)

// angled is a unit vector at angle deg in the plane of the first two axes.
func angled(dims int, deg float64) []float32 {
	v := make([]float32, dims)
	v[0], v[1] = float32(math.Cos(deg*math.Pi/180)), float32(math.Sin(deg*math.Pi/180))
	return v
}

func put(t testing.TB, col *index.Collection, items ...index.Item) {
	t.Helper()
	if err := col.Upsert(ctx, items...); err != nil {
		t.Fatal(err)
	}
}

// putSynthetic stores vecs as items i0000, i0001, ...
func putSynthetic(t testing.TB, col *index.Collection, vecs [][]float32) {
	t.Helper()
	items := make([]index.Item, len(vecs))
	for i, v := range vecs {
		items[i] = index.Item{ID: fmt.Sprintf("i%04d", i), Vector: v}
	}
	put(t, col, items...)
}

// similarOnly: no thumbnails, so only the similar tier (cosine alone) has members.
var similarOnly = &Detector{Tiers: Tiers{Near: 0.99, Pixel: 0.94, Chroma: 0.86, Similar: 0.8}}

// chain is a collection holding a~c and c~b (cosine 0.85) but not a~b (0.45).
func chain(t testing.TB) *index.Collection {
	col := newCollection(t, 4)
	step := math.Acos(0.85) * 180 / math.Pi
	put(t, col, index.Item{ID: "a", Vector: angled(4, 0)}, index.Item{ID: "c", Vector: angled(4, step)},
		index.Item{ID: "b", Vector: angled(4, 2*step)})
	return col
}

// TestClustersAreDisjoint builds the chain that made "Keep this one" delete a kept item: a~c and
// c~b (cosine 0.85) but not a~b (0.45), with c > b in id order. Star clusters were {a, c} and
// {b, c}: keeping c in one deleted it from the other. Now c belongs to a's cluster only.
func TestClustersAreDisjoint(t *testing.T) {
	col := chain(t)
	put(t, col, index.Item{ID: "x", Vector: []float32{0, 0, 1, 0}}, index.Item{ID: "y", Vector: []float32{0, 0, 0.1, 1}})
	page, err := similarOnly.FindDuplicates(ctx, col, TierSimilar, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := clusterIDs(page.Clusters); got != "a,c" {
		t.Fatalf("clusters %s, want a,c only", got)
	}
	if cl, err := similarOnly.ClusterOf(ctx, col, "c", TierSimilar); err != nil || clusterIDs([]DupCluster{cl}) != "a,c" {
		t.Fatalf("ClusterOf(c) = %+v, %v", cl, err)
	}
	if _, err := similarOnly.ClusterOf(ctx, col, "b", TierSimilar); !errors.Is(err, ErrNoCluster) {
		t.Fatalf("ClusterOf(b) = %v, want ErrNoCluster (its only neighbour is claimed by a)", err)
	}
	if _, err := similarOnly.FindDuplicates(ctx, col, "fuzzy", "", 10); !errors.Is(err, ErrInvalidTier) {
		t.Fatalf("tier fuzzy: %v", err)
	}
}

// TestClusterPagesAgree: on clustered vectors with many overlapping neighbourhoods, every item is
// in at most one cluster, and pages of 3 items report exactly the clusters of one big page.
func TestClusterPagesAgree(t *testing.T) {
	col := newCollection(t, 16)
	putSynthetic(t, col, synth.Clustered(300, 16, 12, 0.6, 3))
	whole, err := similarOnly.FindDuplicates(ctx, col, TierSimilar, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for ci, cl := range whole.Clusters {
		for _, m := range cl.Items {
			if prev, ok := seen[m.ID]; ok {
				t.Fatalf("%s is in clusters %d and %d", m.ID, prev, ci)
			}
			seen[m.ID] = ci
		}
	}
	if len(whole.Clusters) < 5 || len(seen) < 50 {
		t.Fatalf("%d clusters holding %d items: the data does not exercise clustering", len(whole.Clusters), len(seen))
	}
	var paged []DupCluster
	for cursor, pages := "", 0; ; pages++ {
		p, err := similarOnly.FindDuplicates(ctx, col, TierSimilar, cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, p.Clusters...)
		if cursor = p.NextCursor; cursor == "" {
			break
		}
		if pages > 200 {
			t.Fatal("paging never ends")
		}
	}
	if a, b := clusterIDs(paged), clusterIDs(whole.Clusters); a != b {
		t.Fatalf("paged clusters\n%s\nwhole\n%s", a, b)
	}
}

func clusterIDs(cls []DupCluster) string {
	var parts []string
	for _, cl := range cls {
		var ids []string
		for _, m := range cl.Items {
			ids = append(ids, m.ID)
		}
		parts = append(parts, strings.Join(ids, ","))
	}
	return strings.Join(parts, " | ")
}

func TestResolve(t *testing.T) {
	col := chain(t)
	for _, tc := range []struct {
		name, keep, tier string
		ids              []string
		want             error
	}{
		{"similar needs ids", "a", TierSimilar, nil, ErrIDsRequired},
		{"no near cluster", "a", TierNear, nil, ErrNoCluster},
		{"keep listed", "a", TierSimilar, []string{"c", "a"}, ErrKeepListed},
		{"unknown keep", "zz", TierNear, []string{"c"}, index.ErrNotFound},
		{"bad tier", "a", "fuzzy", []string{"c"}, ErrInvalidTier},
	} {
		if _, err := similarOnly.Resolve(ctx, col, tc.keep, tc.tier, tc.ids, false); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	dry, err := similarOnly.Resolve(ctx, col, "a", TierSimilar, []string{"c", "gone"}, true)
	if err != nil || !slices.Equal(dry.Trashed, []string{"c"}) || !slices.Equal(dry.Missing, []string{"gone"}) {
		t.Fatalf("dry run %+v, %v", dry, err)
	}
	if _, ok := col.Has("c"); !ok {
		t.Fatal("a dry run moved an item")
	}
	res, err := similarOnly.Resolve(ctx, col, "a", TierSimilar, []string{"c"}, false)
	if err != nil || !slices.Equal(res.Trashed, []string{"c"}) {
		t.Fatalf("resolve %+v, %v", res, err)
	}
	if list, _, err := col.ListTrash("", 10); err != nil || len(list) != 1 || list[0].ID != "c" {
		t.Fatalf("trash %+v, %v", list, err)
	}
}

// TestDiversifyWindow: a copy right after its original is dropped; a copy of a result kept more
// than DiversifyWindow kept results earlier is not looked for (the bound on the work).
func TestDiversifyWindow(t *testing.T) {
	const n = DiversifyWindow + 10
	dims := n + 2
	col := newCollection(t, dims)
	var res []index.Result
	basis := func(i int) []float32 {
		v := make([]float32, dims)
		v[i] = 1
		return v
	}
	for i := range n {
		put(t, col, index.Item{ID: fmt.Sprintf("p%02d", i), Vector: basis(i)})
		res = append(res, index.Result{ID: fmt.Sprintf("p%02d", i)})
		if i == 0 {
			put(t, col, index.Item{ID: "copy-near", Vector: basis(0)})
			res = append(res, index.Result{ID: "copy-near"})
		}
	}
	put(t, col, index.Item{ID: "copy-far", Vector: basis(0)})
	res = append(res, index.Result{ID: "copy-far"}, index.Result{ID: "deleted"})
	d := &Detector{DivScore: 0.95}
	out := d.Diversify(col, res)
	var ids []string
	for _, r := range out {
		ids = append(ids, r.ID)
	}
	if slices.Contains(ids, "copy-near") || !slices.Contains(ids, "copy-far") || slices.Contains(ids, "deleted") || len(ids) != n+1 {
		t.Fatalf("diversified %v", ids)
	}
}

// BenchmarkDiversify: the cost of diversifying k results by cosine, bounded by the window
// (go test ./intel -run '^$' -bench Diversify).
func BenchmarkDiversify(b *testing.B) {
	col := newCollection(b, 1280)
	putSynthetic(b, col, synth.Clustered(2000, 1280, 20, 1.0, 5))
	d := &Detector{DivScore: 0.95}
	for _, k := range []int{10, 1000} {
		res, err := col.Similar(ctx, "i0000", index.SearchOptions{K: k})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			for b.Loop() {
				d.Diversify(col, res)
			}
		})
	}
}
