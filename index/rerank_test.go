package index

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/lookalike/lookalike/internal/bench/synth"
	"github.com/lookalike/lookalike/rerank"
)

// exactLists is every live item's K1 nearest by brute force (ids), the truth the maintained lists
// are held to.
func exactLists(c *Collection) map[string][]string {
	k1 := c.rr.Params().K1
	out := map[string][]string{}
	for s, id := range c.ids {
		if id == "" {
			continue
		}
		self := uint32(s)
		var ids []string
		var buf []float32 // compressed: the nearest by the codes, what the lists are kept with
		hits := c.g.exact(c.g.vecOf(self, &buf), k1, nil, func(x uint32) bool { return x != self })
		for _, h := range hits[:min(k1, len(hits))] {
			ids = append(ids, c.ids[h.id])
		}
		out[id] = ids
	}
	return out
}

// keptLists is every live item's maintained list (ids).
func keptLists(c *Collection) map[string][]string {
	out := map[string][]string{}
	for s, id := range c.ids {
		if id == "" {
			continue
		}
		var ids []string
		for _, n := range c.rr.List(uint32(s)) {
			ids = append(ids, c.ids[n.ID])
		}
		out[id] = ids
	}
	return out
}

// checkRerank holds the re-ranking state to the collection: one list per item, the rows those
// lists give, and lists equal to the exact nearest (minRecall 1) or close to them.
func checkRerank(t *testing.T, c *Collection, minRecall float64, what string) {
	t.Helper()
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.rr.Len() != c.g.count || c.rr.Len() != len(c.byID) {
		t.Fatalf("%s: %d lists for %d items", what, c.rr.Len(), len(c.byID))
	}
	if err := c.rr.Verify(c.rrDist); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	want, got := exactLists(c), keptLists(c)
	hit, all := 0, 0
	for id, w := range want {
		if minRecall == 1 && !slices.Equal(got[id], w) {
			t.Fatalf("%s: list of %s is %v, the nearest are %v", what, id, got[id], w)
		}
		for _, x := range w {
			if slices.Contains(got[id], x) {
				hit++
			}
		}
		all += len(w)
	}
	if r := float64(hit) / float64(max(all, 1)); r < minRecall {
		t.Fatalf("%s: lists hold %.3f of the nearest, want >= %.3f", what, r, minRecall)
	}
}

// TestRerankListsKeptCurrent: every add, replacement, delete, trash and restore keeps each item's
// neighbour list equal to its exact nearest (small collections search exactly) and the rows equal
// to those of the lists; through HNSW the lists are as good as its recall.
func TestRerankListsKeptCurrent(t *testing.T) {
	for _, tc := range []struct {
		name      string
		threshold int
		n         int
		minRecall float64
	}{
		{"exact", 0, 300, 1},
		{"hnsw", -1, 1200, 0.97},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTestDB(t, "", &Options{NoSync: true, ExactThreshold: tc.threshold, SnapshotInterval: -1})
			c, err := db.CreateCollection("r", CollectionConfig{Fingerprint: "f", Dims: 32})
			if err != nil {
				t.Fatal(err)
			}
			vecs := synth.Clustered(tc.n+100, 32, tc.n/40, 1, 3)
			upsertAll(t, c, mkItems(vecs[:tc.n], "i", nil), 64)
			checkRerank(t, c, tc.minRecall, "after adds")

			// A new item right next to i00007 enters its list first.
			twin := slices.Clone(vecs[7])
			twin[0] += 1e-3
			if err := c.Upsert(ctx, Item{ID: "twin", Vector: twin}); err != nil {
				t.Fatal(err)
			}
			c.mu.RLock()
			first := c.ids[c.rr.List(c.byID["i00007"])[0].ID]
			c.mu.RUnlock()
			if first != "twin" {
				t.Fatalf("the new twin of i00007 is not first in its list (%s is)", first)
			}
			rng := rand.New(rand.NewSource(1))
			for i := range 25 { // replacements: new vectors under old ids
				id := fmt.Sprintf("i%05d", rng.Intn(tc.n))
				if err := c.Upsert(ctx, Item{ID: id, Vector: vecs[tc.n+i]}); err != nil {
					t.Fatal(err)
				}
			}
			checkRerank(t, c, tc.minRecall, "after replacements")
			var del []string
			for range tc.n / 8 {
				del = append(del, fmt.Sprintf("i%05d", rng.Intn(tc.n)))
			}
			if _, err := c.Delete(ctx, append(del, "twin")...); err != nil {
				t.Fatal(err)
			}
			checkRerank(t, c, tc.minRecall, "after deletes")
			moved, err := c.Trash(ctx, "i00001", "i00002", "i00003")
			if err != nil {
				t.Fatal(err)
			}
			checkRerank(t, c, tc.minRecall, "after trashing")
			for _, id := range moved {
				if _, err := c.RestoreFromTrash(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			checkRerank(t, c, tc.minRecall, "after restoring")
		})
	}
}

// TestRerankListsLinkedInParallel: the items of one large write are linked on several goroutines,
// and two of them linked at the same moment need not find each other through the graph; their
// lists must hold each other all the same (linkedBeside). 300 items give exact insertion beams,
// so every list must be the exact nearest.
func TestRerankListsLinkedInParallel(t *testing.T) {
	db := openTestDB(t, "", &Options{NoSync: true, ExactThreshold: -1, SnapshotInterval: -1, BuildWorkers: 4})
	c, err := db.CreateCollection("r", CollectionConfig{Fingerprint: "f", Dims: 32})
	if err != nil {
		t.Fatal(err)
	}
	upsertAll(t, c, mkItems(synth.Clustered(300, 32, 8, 1, 3), "i", nil), 300)
	checkRerank(t, c, 1, "after one write of 300 items on 4 goroutines")
}

// TestRerankPersistence: the lists are snapshotted with the graph, brought up to date by the
// replay after a crash, and searched for again when their snapshot is missing or corrupt.
func TestRerankPersistence(t *testing.T) {
	dir := t.TempDir()
	o := &Options{NoSync: true, SnapshotInterval: -1}
	vecs := synth.Clustered(700, 32, 12, 1, 8)
	db, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := db.CreateCollection("a", CollectionConfig{Fingerprint: "f", Dims: 32})
	upsertAll(t, c, mkItems(vecs[:500], "i", nil), 100)
	c.mu.RLock()
	before := keptLists(c)
	c.mu.RUnlock()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	reopen := func(from string) (*DB, *Collection) {
		t.Helper()
		db, err := Open(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		c, err := db.Collection("a")
		if err != nil {
			t.Fatal(err)
		}
		if c.rrFrom != from {
			t.Fatalf("re-ranking lists loaded from %q, want %q", c.rrFrom, from)
		}
		checkRerank(t, c, 1, from)
		return db, c
	}
	db, c = reopen("lists from the snapshot")
	c.mu.RLock()
	after := keptLists(c)
	for id, s := range c.byID { // fewer items than the sample: each scale is measured on them all
		var m float32
		for _, y := range c.byID {
			m = max(m, c.rrDist(s, y))
		}
		if got := c.rr.Scale(s); got != m {
			t.Fatalf("row scale of %s is %v after a reopen, its largest distance %v", id, got, m)
		}
	}
	c.mu.RUnlock()
	for id, l := range before {
		if !slices.Equal(after[id], l) {
			t.Fatalf("list of %s changed across a reopen: %v, was %v", id, after[id], l)
		}
	}
	// Writes after the snapshot, then a crash (no snapshot on the way out).
	c.Delete(ctx, "i00000", "i00250", "i00499")
	c.Upsert(ctx, Item{ID: "i00010", Vector: vecs[600]})
	upsertAll(t, c, mkItems(vecs[500:560], "n", nil), 25)
	db.closed.Store(true)
	close(db.stop)
	db.wg.Wait()
	db.bolt.Close()
	db, _ = reopen("lists from the snapshot + replay")
	db.Close()

	corrupt := func(f func(b []byte) []byte) {
		b, _ := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
		defer b.Close()
		b.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucketCollections).Bucket([]byte("a"))
			v := f(bytes.Clone(bk.Get(keyKNN)))
			if v == nil {
				return bk.Delete(keyKNN)
			}
			return bk.Put(keyKNN, v)
		})
	}
	corrupt(func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b })
	db, _ = reopen("lists from the graph")
	db.Close()
	corrupt(func([]byte) []byte { return nil }) // a file from before the lists were snapshotted
	db, _ = reopen("lists from the graph")
	db.Close()
}

// TestSearchRerank: every mode answers within the options (k, filter, exclusions, min score,
// paging), scores are cosine similarities to the query, none is the plain search, and k-reciprocal
// re-ranking through HNSW agrees with its exact counterpart.
func TestSearchRerank(t *testing.T) {
	db := openTestDB(t, "", &Options{NoSync: true, ExactThreshold: -1, SnapshotInterval: -1})
	c, err := db.CreateCollection("s", CollectionConfig{Fingerprint: "f", Dims: 32})
	if err != nil {
		t.Fatal(err)
	}
	vecs := synth.Clustered(1100, 32, 25, 1, 12)
	upsertAll(t, c, mkItems(vecs[:1000], "i", func(i int) string { return fmt.Sprintf(`{"g":"g%d"}`, i%3) }), 100)
	f, _ := ParseFilter(`g = "g1"`)
	minScore := float32(0.5)
	for _, mode := range rerank.Modes {
		for _, tc := range []struct {
			name string
			o    SearchOptions
			id   string // Similar
		}{
			{"plain", SearchOptions{K: 20}, ""},
			{"filtered", SearchOptions{K: 10, Filter: f}, ""},
			{"excluded", SearchOptions{K: 10, ExcludeIDs: []string{"i00001", "i00002"}}, ""},
			{"min score", SearchOptions{K: 30, MinScore: &minScore}, ""},
			{"exact", SearchOptions{K: 10, Exact: true}, ""},
			{"similar", SearchOptions{K: 10}, "i00005"},
			{"similar filtered", SearchOptions{K: 10, Filter: f}, "i00005"},
		} {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				o := tc.o
				o.Rerank = mode
				q := vecs[1000+len(tc.name)]
				var res []Result
				if tc.id != "" {
					q = vecs[5]
					res, err = c.Similar(ctx, tc.id, o)
				} else {
					res, err = c.Search(ctx, q, o)
				}
				if err != nil {
					t.Fatal(err)
				}
				if o.MinScore == nil && len(res) != o.K {
					t.Fatalf("%d results, want %d", len(res), o.K)
				}
				seen := map[string]bool{}
				for _, r := range res {
					if seen[r.ID] {
						t.Fatalf("%s twice", r.ID)
					}
					seen[r.ID] = true
					if r.ID == tc.id || slices.Contains(o.ExcludeIDs, r.ID) {
						t.Fatalf("%s returned", r.ID)
					}
					if o.Filter != nil && !o.Filter.Match(r.Metadata) {
						t.Fatalf("%s violates the filter", r.ID)
					}
					if o.MinScore != nil && r.Score < *o.MinScore {
						t.Fatalf("%s scores %v below the minimum", r.ID, r.Score)
					}
					v, _ := c.Vector(r.ID)
					if want := 1 - (1 - dot(unit(q), v)); math.Abs(float64(r.Score-want)) > 1e-5 {
						t.Fatalf("%s: score %v, cosine to the query %v", r.ID, r.Score, want)
					}
				}
				if mode == rerank.ModeNone {
					plain := tc.o
					var want []Result
					if tc.id != "" {
						want, _ = c.Similar(ctx, tc.id, plain)
					} else {
						want, _ = c.Search(ctx, q, plain)
					}
					if fmt.Sprint(want) != fmt.Sprint(res) {
						t.Fatalf("rerank=none differs from a plain search")
					}
				}
				if tc.o.MinScore != nil || tc.o.Exact {
					return
				}
				// Pages are cut from one ranking.
				o.K, o.Offset = 5, 5
				var page []Result
				if tc.id != "" {
					page, _ = c.Similar(ctx, tc.id, o)
				} else {
					page, _ = c.Search(ctx, q, o)
				}
				if fmt.Sprint(page) != fmt.Sprint(res[5:10]) {
					t.Fatalf("second page of 5 %v is not results 5..9 %v", ids5(page), ids5(res[5:10]))
				}
			})
		}
	}
	// HNSW against exact search, k-reciprocal with query expansion.
	agree := 0.0
	for i := range 20 {
		q := vecs[1000+i]
		a, _ := c.Search(ctx, q, SearchOptions{K: 10, Rerank: rerank.ModeQEKR})
		b, _ := c.Search(ctx, q, SearchOptions{K: 10, Rerank: rerank.ModeQEKR, Exact: true})
		for _, x := range a {
			for _, y := range b {
				if x.ID == y.ID {
					agree++
				}
			}
		}
	}
	if agree /= 200; agree < 0.95 {
		t.Errorf("qe+kr top 10 through HNSW holds %.3f of the exact one's", agree)
	}
	if _, err := c.Search(ctx, vecs[0], SearchOptions{Rerank: rerank.Mode(9)}); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("unknown mode: %v, want ErrInvalidQuery", err)
	}
}

func unit(v []float32) []float32 { u, _ := normalize(v); return u }

func ids5(rs []Result) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// TestRerankConcurrent runs re-ranked searches beside adds, replacements and deletes (run it with
// -race); the state stays that of its lists.
func TestRerankConcurrent(t *testing.T) {
	db := openTestDB(t, "", &Options{NoSync: true, ExactThreshold: -1, SnapshotInterval: -1, EfConstruction: 64})
	c, err := db.CreateCollection("c", CollectionConfig{Fingerprint: "f", Dims: 32})
	if err != nil {
		t.Fatal(err)
	}
	vecs := synth.Clustered(1600, 32, 20, 1, 4)
	upsertAll(t, c, mkItems(vecs[:600], "a", nil), 100)
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	wg.Add(1)
	go func() { // writer
		defer wg.Done()
		rng := rand.New(rand.NewSource(3))
		for i := range 200 {
			id := fmt.Sprintf("a%05d", rng.Intn(800))
			var err error
			if i%4 == 3 {
				_, err = c.Delete(ctx, id)
			} else {
				err = c.Upsert(ctx, Item{ID: id, Vector: vecs[600+rng.Intn(1000)]})
			}
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(r)))
			for i := range 150 {
				mode := rerank.Modes[i%len(rerank.Modes)]
				var err error
				if i%2 == 0 {
					_, err = c.Search(ctx, vecs[rng.Intn(len(vecs))], SearchOptions{K: 10, Rerank: mode})
				} else {
					_, err = c.Similar(ctx, fmt.Sprintf("a%05d", rng.Intn(600)), SearchOptions{K: 10, Rerank: mode})
				}
				if err != nil && !errors.Is(err, ErrNotFound) {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	checkRerank(t, c, 0.95, "after concurrent writes and searches")
}

// TestRerankKeepsExactMatchFirst: a photo of a stored item, searched with any re-ranking, finds
// that item first, also among look-alikes (groups of four close photos, as UKBench's) and
// near-identical copies (cosine ~0.998, a re-encoded upload). Query expansion moves the query off
// the item, and k-reciprocal re-ranking then orders the item and its group-mates by Jaccard
// distances whose noise outweighs their original distances: without the exact-match rule 9 of the
// 48 items of the first case were not first under qe+kr, one not even among the top 3.
func TestRerankKeepsExactMatchFirst(t *testing.T) {
	for _, tc := range []struct {
		name   string
		groups int
		exact  int // Options.ExactThreshold: -1 searches (and lists) through the graph
		copies bool
	}{
		{"12 groups of 4, graph", 12, -1, false},
		{"12 groups of 4 with copies, graph", 12, -1, true},
		{"12 groups of 4 with copies, exact", 12, 0, true},
		{"60 groups of 4 with copies, graph", 60, -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTestDB(t, "", &Options{NoSync: true, ExactThreshold: tc.exact, SnapshotInterval: -1})
			vecs := synth.Groups(tc.groups, 4, 64, 0.5, 7)
			c, err := db.CreateCollection("s", CollectionConfig{Fingerprint: "f", Dims: 64})
			if err != nil {
				t.Fatal(err)
			}
			items := mkItems(vecs, "i", nil)
			if tc.copies {
				rng := rand.New(rand.NewSource(3))
				for i := 0; i < len(vecs); i += 3 {
					v := slices.Clone(vecs[i])
					for j := range v {
						v[j] = max(0, v[j]+float32(rng.NormFloat64()*0.006))
					}
					items = append(items, Item{ID: fmt.Sprintf("copy%05d", i), Vector: unit(v), ContentHash: fmt.Sprintf("c%d", i)})
				}
			}
			upsertAll(t, c, items, 16)
			for _, mode := range []rerank.Mode{rerank.ModeQE, rerank.ModeKR, rerank.ModeQEKR} {
				demoted := 0
				for i, v := range vecs {
					res, err := c.Search(ctx, v, SearchOptions{K: 3, Rerank: mode})
					if err != nil {
						t.Fatal(err)
					}
					if len(res) == 0 || res[0].ID != items[i].ID {
						if demoted++; demoted <= 3 {
							t.Errorf("%v: %s searched with its own vector ranks %v", mode, items[i].ID, res)
						}
					}
				}
				if demoted > 0 {
					t.Errorf("%v: %d of %d items not first when searched with their own vector", mode, demoted, len(vecs))
				}
			}
		})
	}
}

// TestSetRerankParams: new parameters rebuild the rows from the kept lists (the defaults again
// give the same answers as the rows kept current by the writes), a row scale is installed and
// kept by later writes, and bad parameters are refused.
func TestSetRerankParams(t *testing.T) {
	ctx := t.Context()
	db := openTestDB(t, "", &Options{NoSync: true, ExactThreshold: -1, SnapshotInterval: -1})
	c, err := db.CreateCollection("c", CollectionConfig{Fingerprint: "fp", Dims: 32})
	if err != nil {
		t.Fatal(err)
	}
	vecs := synth.Clustered(520, 32, 12, 1, 21)
	upsertAll(t, c, mkItems(vecs[:500], "i", nil), 100)
	o := SearchOptions{K: 10, Rerank: rerank.ModeQEKR}
	before, err := c.Search(ctx, vecs[510], o)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetRerankParams(rerank.DefaultParams()); err != nil {
		t.Fatal(err)
	}
	if after, _ := c.Search(ctx, vecs[510], o); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("rebuilt with the same parameters: %v, kept current: %v", after, before)
	}
	p := rerank.DefaultParams()
	p.RowScale = 64
	if err := c.SetRerankParams(p); err != nil {
		t.Fatal(err)
	}
	if got := c.RerankParams(); got != p {
		t.Fatalf("parameters %+v, want %+v", got, p)
	}
	upsertAll(t, c, mkItems(vecs[500:], "j", nil), 10)
	checkRerank(t, c, 0.9, "row scale, after writes")
	if res, err := c.Search(ctx, vecs[510], o); err != nil || len(res) != o.K {
		t.Fatalf("%d results, %v", len(res), err)
	}
	p.RowScale = -1
	if err := c.SetRerankParams(p); !errors.Is(err, rerank.ErrParams) {
		t.Fatalf("RowScale -1: %v, want ErrParams", err)
	}
}

// TestListsSnapshotKeepsScales: the lists snapshot carries each item's row scale, and a state
// with as many items as its sample loads them instead of measuring them again.
func TestListsSnapshotKeepsScales(t *testing.T) {
	p := rerank.DefaultParams()
	p.RowScale = 2
	st, _ := rerank.New(p)
	st.SetList(0, []rerank.Neighbor{{ID: 1, D: 0.1}, {ID: 2, D: 0.3}})
	st.SetList(1, []rerank.Neighbor{{ID: 0, D: 0.1}})
	st.SetList(2, []rerank.Neighbor{{ID: 0, D: 0.3}})
	for s, m := range []float32{0.5, 0.7, 0.9} {
		st.SetScale(uint32(s), m)
	}
	b := encodeLists(st, 3, 3)
	got, _ := rerank.New(p)
	if err := decodeLists(got, b, 3, []bool{true, true, true}, nil); err != nil {
		t.Fatal(err)
	}
	got.Rebuild(func(a, b uint32) float32 { return 0.25 }, 1)
	for s, m := range []float32{0.5, 0.7, 0.9} {
		if got.Scale(uint32(s)) != m {
			t.Fatalf("slot %d: scale %v, stored %v", s, got.Scale(uint32(s)), m)
		}
	}
	other, _ := rerank.New(rerank.DefaultParams()) // another sample size: measured, not loaded
	if err := decodeLists(other, b, 3, []bool{true, true, true}, nil); err != nil {
		t.Fatal(err)
	}
	if other.Scale(0) != 0 {
		t.Fatalf("scale %v loaded for another sample size", other.Scale(0))
	}
}
