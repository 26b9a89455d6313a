package rerank

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// small parameters keep the reference fast while exercising the expansion (half 3) and local
// query expansion (k2 3).
var testParams = Params{K1: 6, K2: 3, Lambda: 0.3}

// boundParams are the defaults without the row scale: 1 - cosine as it is, so that rows kept by
// writes equal those built from scratch (with a scale, each item keeps the one it was given).
func boundParams() Params {
	p := DefaultParams()
	p.RowScale = 0
	return p
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		err  bool
	}{
		{"", ModeDefault, false}, {"none", ModeNone, false}, {"off", ModeNone, false}, {"QE", ModeQE, false},
		{"kr", ModeKR, false}, {"qe+kr", ModeQEKR, false}, {"qe kr", ModeQEKR, false}, {"kr+qe", ModeQEKR, false},
		{"qe+", 0, true}, {"k-reciprocal", 0, true},
	} {
		got, err := ParseMode(tc.in)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ParseMode(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
		if tc.err && !errors.Is(err, ErrMode) {
			t.Errorf("ParseMode(%q): error %v is not ErrMode", tc.in, err)
		}
	}
	for _, m := range Modes {
		if back, err := ParseMode(m.String()); err != nil || back != m {
			t.Errorf("%v does not round-trip: %v %v", m, back, err)
		}
	}
}

func TestParams(t *testing.T) {
	for _, p := range []Params{{K1: 1, K2: 1}, {K1: 20, K2: 21}, {K1: 20, K2: 6, Lambda: 1.5}, {K1: 20, K2: 6, Lambda: float32(math.NaN())}, {K1: 20, K2: 6, RowScale: -1}, {K1: 20, K2: 6, RowScale: MaxRowScale + 1}} {
		if _, err := New(p); !errors.Is(err, ErrParams) {
			t.Errorf("New(%+v) = %v, want ErrParams", p, err)
		}
	}
	if _, err := New(DefaultParams()); err != nil {
		t.Fatal(err)
	}
}

// TestItemQueryMatchesReference: querying by a stored item is the paper's algorithm exactly.
func TestItemQueryMatchesReference(t *testing.T) {
	rowMax := DefaultParams()
	rowMax.RowScale = 240 // the whole collection: the authors' normalisation exactly
	for _, p := range []Params{testParams, boundParams(), DefaultParams(), rowMax} {
		t.Run(fmt.Sprintf("k1=%d,scale=%d", p.K1, p.RowScale), func(t *testing.T) {
			w := newWorld(240, 48, 3)
			for s := range w.live {
				w.live[s] = true
			}
			st := w.fresh(p)
			queries := []uint32{0, 17, 101, 239}
			ref := denseRerank(w.vecs, p, 0, 17, 101, 239)
			for _, q := range queries {
				const k = 10
				base := w.nearest(w.vecs[q], q)[:k]
				got := st.Rank(st.ItemQuery(q), base, k, func(g uint32) float32 { return w.dist(q, g) }, nil)
				want := refTop(ref[int(q)], q, k)
				if len(got) != k {
					t.Fatalf("query %d: %d results", q, len(got))
				}
				for i := range got {
					if got[i].ID != want[i].ID || math.Abs(float64(got[i].F-want[i].F)) > 1e-4 {
						t.Fatalf("query %d rank %d: got %d (%.5f), reference %d (%.5f)", q, i, got[i].ID, got[i].F, want[i].ID, want[i].F)
					}
				}
			}
		})
	}
}

func refTop(row []float32, self uint32, k int) []Ranked {
	var all []Ranked
	for j, f := range row {
		if uint32(j) != self {
			all = append(all, Ranked{ID: uint32(j), F: f})
		}
	}
	slices.SortFunc(all, func(a, b Ranked) int {
		switch {
		case a.F < b.F:
			return -1
		case a.F > b.F:
			return 1
		}
		return cmpU32(a.ID, b.ID)
	})
	return all[:k]
}

// TestExternalQueryMatchesReference: a query that is not stored is placed among the items as the
// paper places a probe, so its ranking is the reference's with the query among the items.
func TestExternalQueryMatchesReference(t *testing.T) {
	const n, k = 300, 10
	rowMax := DefaultParams()
	rowMax.RowScale = n
	for _, p := range []Params{boundParams(), rowMax} {
		t.Run(fmt.Sprintf("scale=%d", p.RowScale), func(t *testing.T) { externalQueryMatches(t, p, n, k) })
	}
}

func externalQueryMatches(t *testing.T, p Params, n, k int) {
	w := newWorld(n+12, 48, 5)
	for s := range n {
		w.live[s] = true
	}
	st := w.fresh(p)
	for q := n; q < n+12; q++ {
		qv := w.vecs[q]
		dq := func(g uint32) float32 { return 1 - dot32(qv, w.vecs[g]) }
		near := w.nearest(qv, NoSlot)
		got := st.Rank(st.ExternalQuery(near[:2*p.K1], dq, w.dist), near[:k], k, dq, nil)
		want := refTop(denseRerank(append(slices.Clone(w.vecs[:n]), qv), p, n)[n], uint32(n), k)
		for i := range got {
			if got[i].ID != want[i].ID || math.Abs(float64(got[i].F-want[i].F)) > 1e-4 {
				t.Fatalf("query %d rank %d: got %d (%.5f), reference %d (%.5f)", q, i, got[i].ID, got[i].F, want[i].ID, want[i].F)
			}
		}
	}
	if st.Len() != n {
		t.Fatalf("queries changed the state: %d items", st.Len())
	}
}

// TestMaintenance: lists and rows kept current through adds, deletes and replacements equal those
// built from scratch, and equal exact neighbour lists.
func TestMaintenance(t *testing.T) {
	for _, p := range []Params{testParams, boundParams()} {
		t.Run(fmt.Sprintf("k1=%d", p.K1), func(t *testing.T) {
			const n = 160
			w := newWorld(n, 32, 11)
			rng := rand.New(rand.NewSource(2))
			st, _ := New(p)
			order := rng.Perm(n)
			var touched Stats
			ops := 0
			for i, s := range order {
				touched = addStats(touched, w.add(st, uint32(s)))
				ops++
				if i%7 == 6 { // delete a random live item
					d := uint32(order[rng.Intn(i)])
					if w.live[d] {
						touched = addStats(touched, w.remove(st, d))
						ops++
					}
				}
				if i%11 == 10 { // replace a random live item with a new vector
					r := uint32(order[rng.Intn(i)])
					if w.live[r] {
						w.remove(st, r)
						w.vecs[r] = randomUnit(rng, 32)
						w.add(st, r)
						ops += 2
					}
				}
				if i%40 == 39 || i == n-1 {
					checkSame(t, st, w.fresh(p), w)
					if err := st.Verify(w.dist); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, s := range order[:n/2] { // delete half
				if w.live[s] {
					w.remove(st, uint32(s))
				}
			}
			checkSame(t, st, w.fresh(p), w)
			for s := range w.live { // and the rest
				if w.live[s] {
					w.remove(st, uint32(s))
				}
			}
			if st.Len() != 0 {
				t.Fatalf("%d items left after deleting all", st.Len())
			}
			for s := range st.post {
				if len(st.post[s]) > 0 || len(st.rev[s]) > 0 {
					t.Fatalf("slot %d keeps postings or reverse links after deleting all", s)
				}
			}
			f := func(x int) float64 { return float64(x) / float64(ops) }
			t.Logf("%d writes: mean per write %.1f lists, %.1f V0 rows (of %.1f computed), %.1f V rows (of %.1f computed)", ops,
				f(touched.Lists), f(touched.Rows0), f(touched.Computed0), f(touched.Rows), f(touched.Computed))
		})
	}
}

// TestMaintenanceRowScale: with RowScale, adds and removes keep the rows those of the lists and
// of the scales each item was given (Verify), every scale is the item's largest distance to the
// sample, and a Rebuild ends where a state built from scratch does.
func TestMaintenanceRowScale(t *testing.T) {
	p := DefaultParams()
	p.RowScale = 16
	const n = 120
	w := newWorld(n, 32, 13)
	rng := rand.New(rand.NewSource(5))
	st, _ := New(p)
	order := rng.Perm(n)
	for i, s := range order {
		w.add(st, uint32(s))
		if i%5 == 4 {
			if d := uint32(order[rng.Intn(i)]); w.live[d] {
				w.remove(st, d)
			}
		}
	}
	if err := st.Verify(w.dist); err != nil {
		t.Fatal(err)
	}
	if len(st.ref) == 0 || len(st.ref) > p.RowScale {
		t.Fatalf("sample of %d items, want 1..%d", len(st.ref), p.RowScale)
	}
	// Built from scratch, every scale is the item's largest distance to the sample; a state
	// loaded with those scales (SetScale) rebuilds to the same rows without measuring.
	fresh := w.fresh(p)
	if len(fresh.ref) != p.RowScale {
		t.Fatalf("rebuilt sample of %d items, want %d", len(fresh.ref), p.RowScale)
	}
	loaded, _ := New(p)
	for s, ok := range w.live {
		if !ok {
			continue
		}
		var m float32
		for _, r := range fresh.ref {
			m = max(m, w.dist(uint32(s), r))
		}
		if fresh.Scale(uint32(s)) != m || m <= 0 || m > 2 {
			t.Fatalf("slot %d: scale %v, largest distance to the sample %v", s, fresh.Scale(uint32(s)), m)
		}
		loaded.SetList(uint32(s), fresh.List(uint32(s)))
		loaded.SetScale(uint32(s), m)
	}
	loaded.Rebuild(w.dist, 1)
	checkSame(t, loaded, fresh, w)
	for s, ok := range w.live {
		if ok && loaded.Scale(uint32(s)) != fresh.Scale(uint32(s)) {
			t.Fatalf("slot %d: loaded scale %v, given %v", s, loaded.Scale(uint32(s)), fresh.Scale(uint32(s)))
		}
	}
}

func addStats(a, b Stats) Stats {
	return Stats{a.Lists + b.Lists, a.Rows0 + b.Rows0, a.Rows + b.Rows, a.Computed0 + b.Computed0, a.Computed + b.Computed}
}

// checkSame compares a maintained state with one built from scratch.
func checkSame(t *testing.T, got, want *State, w *world) {
	t.Helper()
	if got.Len() != want.Len() {
		t.Fatalf("%d items, want %d", got.Len(), want.Len())
	}
	for s, ok := range w.live {
		u := uint32(s)
		if got.Has(u) != ok {
			t.Fatalf("slot %d: present %v, live %v", s, got.Has(u), ok)
		}
		if !ok {
			if s < len(got.post) && (len(got.post[s]) > 0 || len(got.rev[s]) > 0 || got.Row(u) != nil) {
				t.Fatalf("deleted slot %d keeps postings, reverse links or a row", s)
			}
			continue
		}
		if !slices.Equal(got.List(u), want.List(u)) {
			t.Fatalf("slot %d: list %v, want %v", s, got.List(u), want.List(u))
		}
		if !slices.Equal(got.v0[s], want.v0[s]) {
			t.Fatalf("slot %d: V0 row %v, want %v", s, got.v0[s], want.v0[s])
		}
		if !slices.Equal(got.Row(u), want.Row(u)) {
			t.Fatalf("slot %d: V row %v, want %v", s, got.Row(u), want.Row(u))
		}
		if !sameMultiset(got.rev[s], want.rev[s]) {
			t.Fatalf("slot %d: reverse list %v, want %v", s, got.rev[s], want.rev[s])
		}
		a, b := slices.Clone(got.post[s]), slices.Clone(want.post[s])
		byID := func(x, y Entry) int { return cmpU32(x.ID, y.ID) }
		slices.SortFunc(a, byID)
		slices.SortFunc(b, byID)
		if !slices.Equal(a, b) {
			t.Fatalf("slot %d: postings %v, want %v", s, a, b)
		}
	}
}

// TestReplayBeforeRebuild: loaded lists brought up to date by adds and removes before the rows
// exist (the index's replay after a crash) end where a state built from scratch does.
func TestReplayBeforeRebuild(t *testing.T) {
	p := DefaultParams()
	w := newWorld(200, 32, 4)
	for s := range 150 {
		w.live[s] = true
	}
	st, _ := New(p)
	for s := range 150 {
		st.SetList(uint32(s), w.nearest(w.vecs[s], uint32(s)))
	}
	for s := uint32(0); s < 150; s += 9 {
		w.remove(st, s)
	}
	for s := uint32(150); s < 200; s++ {
		w.add(st, s)
	}
	st.Rebuild(w.dist, 2)
	checkSame(t, st, w.fresh(p), w)
	if err := st.Verify(w.dist); err != nil {
		t.Fatal(err)
	}
}

// TestExternalQueryOfAnItemRanksItFirst: a query equal to a stored item is placed among the items
// as the paper places a probe, beside its copy: both have the same neighbours, so their rows are
// equal (Jaccard 0) and the item (distance 0) comes first, before its group-mates and a
// near-identical copy of it.
func TestExternalQueryOfAnItemRanksItFirst(t *testing.T) {
	p := DefaultParams()
	vecs := synth.Groups(30, 4, 64, 0.5, 9)
	for i := 0; i < 120; i += 5 { // near-identical copies of every fifth item
		c := slices.Clone(vecs[i])
		c[i%64] += 0.01
		vecs = append(vecs, unitVec(c))
	}
	w := &world{vecs: vecs, live: make([]bool, len(vecs))}
	for s := range w.live {
		w.live[s] = true
	}
	st := w.fresh(p)
	for x := range uint32(120) {
		qv := vecs[x]
		dq := func(g uint32) float32 { return 1 - dot32(qv, w.vecs[g]) }
		near := w.nearest(qv, NoSlot)
		got := st.Rank(st.ExternalQuery(near[:2*p.K1], dq, w.dist), near[:4], 4, dq, nil)
		if got[0].ID != x {
			t.Errorf("item %d queried by its vector ranks %v", x, got)
		}
	}
}

func unitVec(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / math.Sqrt(s))
	}
	return v
}

// TestRowScaleWhileGrowing: a collection growing from empty measures every scale again each time
// it doubles, so that once it reaches the sample size each item's scale is its largest distance to
// the whole collection, and not to the few items there were when it was added.
func TestRowScaleWhileGrowing(t *testing.T) {
	p := DefaultParams()
	p.RowScale = 64
	w := newWorld(80, 32, 17)
	st, _ := New(p)
	for s := range 64 {
		w.add(st, uint32(s))
	}
	for s := range 64 {
		var m float32
		for r := range 64 {
			m = max(m, w.dist(uint32(s), uint32(r)))
		}
		if got := st.Scale(uint32(s)); got != m {
			t.Fatalf("slot %d: scale %v, largest distance to the collection %v", s, got, m)
		}
	}
	for s := 64; s < 80; s++ { // full sample: measured once, when added
		w.add(st, uint32(s))
	}
	if st.scaledAt != 64 {
		t.Fatalf("scales last measured at %d items, want 64", st.scaledAt)
	}
	if err := st.Verify(w.dist); err != nil {
		t.Fatal(err)
	}
}
