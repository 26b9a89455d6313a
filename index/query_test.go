package index

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestNonFiniteNumber(t *testing.T) {
	cases := []struct{ meta, want string }{
		{`{"price":1e400}`, "price"},
		{`{"price":-1e400}`, "price"},
		{`{"a":"1e400","b":[1,"x",{"c":2}],"d":{"e":[[1],[2,1e999]]}}`, "d.e[1][1]"},
		{`{"ok":1e308,"bad":[{"x":9e999}]}`, "bad[0].x"},
		{`{"a.b":{"c":1e309}}`, "a.b.c"},
		{`{"price":1e308,"tiny":1e-400,"s":"9e999","n":null,"t":true}`, ""},
		{`{"a":`, ""}, // malformed: reported by the JSON checks, not here
		{``, ""},
	}
	for _, tc := range cases {
		if got := NonFiniteNumber([]byte(tc.meta)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.meta, got, tc.want)
		}
	}
}

func TestQueryLimitsAndFields(t *testing.T) {
	db := openTestDB(t, "", nil)
	c, err := db.CreateCollection("q", CollectionConfig{Fingerprint: "f", Dims: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Upsert(ctx, Item{ID: "bad", Vector: []float32{1, 0, 0, 0}, Metadata: json.RawMessage(`{"p":{"q":[1e400]}}`)}); !errors.Is(err, ErrInvalidItem) || !strings.Contains(err.Error(), `"p.q[0]"`) {
		t.Fatalf("metadata with 1e400: %v", err)
	}
	items := []Item{
		{ID: "x", Vector: []float32{1, 0, 0, 0}, Metadata: json.RawMessage(`{"cat":"a","price":3,"dims":{"w":1}}`)},
		{ID: "y", Vector: []float32{0, 1, 0, 0}, Metadata: json.RawMessage(`{"cat":"b","tags":["t",2]}`)},
		{ID: "z", Vector: []float32{0, 0, 1, 0}},
	}
	upsertAll(t, c, items, 3)
	if got := c.Fields(); !slices.Equal(got, []string{"cat", "dims.w", "price", "tags"}) {
		t.Fatalf("fields %v", got)
	}
	// Replacing and deleting items keeps the counts exact.
	upsertAll(t, c, []Item{{ID: "x", Vector: []float32{1, 0, 0, 0}, Metadata: json.RawMessage(`{"cat":"c"}`)}}, 1)
	if _, err := c.Delete(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	if got := c.Fields(); !slices.Equal(got, []string{"cat"}) || !c.HasField("cat") || c.HasField("price") {
		t.Fatalf("after replace and delete: %v", got)
	}

	// Scores below zero are results unless a min score says otherwise.
	q := []float32{-1, -2, -3, 0}
	res, err := c.Search(ctx, q, SearchOptions{K: 3})
	if err != nil || len(res) != 2 || res[0].ID != "x" || res[0].Score >= 0 {
		t.Fatalf("negative scores: %v %v", res, err)
	}
	zero := float32(0)
	if res, err := c.Search(ctx, q, SearchOptions{K: 3, MinScore: &zero}); err != nil || len(res) != 0 {
		t.Fatalf("min score 0: %v %v", res, err)
	}

	nan := float32(math.NaN())
	for name, o := range map[string]SearchOptions{
		"k over MaxK":      {K: MaxK + 1},
		"k negative":       {K: -1},
		"window":           {K: 10, Offset: MaxK - 9},
		"negative offset":  {K: 1, Offset: -1},
		"ef over MaxEf":    {K: 1, Ef: MaxEf + 1},
		"negative ef":      {K: 1, Ef: -1},
		"NaN min score":    {K: 1, MinScore: &nan},
		"min score over 1": {K: 1, MinScore: func() *float32 { v := float32(1.5); return &v }()},
	} {
		if _, err := c.Search(ctx, q, o); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("%s: %v, want ErrInvalidQuery", name, err)
		}
	}
	for name, o := range map[string]SearchOptions{
		"k = MaxK":            {K: MaxK},
		"window exactly":      {K: 10, Offset: MaxK - 10},
		"ef = MaxEf":          {K: 1, Ef: MaxEf},
		"defaults (K 0 → 10)": {},
	} {
		if _, err := c.Search(ctx, q, o); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := c.Search(ctx, []float32{0, 0, 0, 0}, SearchOptions{}); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("zero query vector: %v", err)
	}
}

func TestWidenStaysWithinMaxEf(t *testing.T) {
	cases := []struct {
		ef   int
		sel  float64
		want int
	}{
		{64, 1, 64},
		{64, 0.5, 128},
		{64, 0.001, 64 * 16},
		{64, 0, 64 * 16},
		{1000, 0, MaxEf},
		{1000, 1e-300, MaxEf},
		{MaxEf, 0.01, MaxEf},
	}
	for _, tc := range cases {
		if got := widen(tc.ef, tc.sel); got != tc.want {
			t.Errorf("widen(%d, %g) = %d, want %d", tc.ef, tc.sel, got, tc.want)
		}
	}
}
