package index

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

func TestFilterMatch(t *testing.T) {
	meta := json.RawMessage(`{"category":"shoes","brand":"nike","price":42.5,"tags":["red","sale"],"in_stock":true,"dims":{"w":3}}`)
	cases := []struct {
		expr string
		want bool
	}{
		{`category = "shoes"`, true},
		{`category = "hats"`, false},
		{`category == 'shoes'`, true},
		{`brand IN ("nike","adidas")`, true},
		{`brand NOT IN ("nike","adidas")`, false},
		{`price >= 10 AND price < 100`, true},
		{`price > 42.5`, false},
		{`price <= 42.5`, true},
		{`tags = "red"`, true},
		{`tags = "blue"`, false},
		{`tags IN ("blue","sale")`, true},
		{`in_stock = true`, true},
		{`dims.w = 3`, true},
		{`missing = "x"`, false},
		{`missing != "x"`, true},
		{`NOT category = "shoes"`, false},
		{`category = "hats" OR brand = "nike"`, true},
		{`category = "hats" OR brand = "nike" AND price > 100`, false},
		{`(category = "hats" OR brand = "nike") AND price < 100`, true},
		{`category = "shoes" AND brand IN ("nike","adidas") AND price >= 10 AND price < 100 AND tags = "red"`, true},
		{`price = 42.5`, true},
		{`price < 0`, false},
		{`category and "x"`, false}, // placeholder: replaced by error cases below
	}
	for _, tc := range cases[:len(cases)-1] {
		f, err := ParseFilter(tc.expr)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", tc.expr, err)
			continue
		}
		if got := f.Match(meta); got != tc.want {
			t.Errorf("%q (parsed %s) = %v, want %v", tc.expr, f, got, tc.want)
		}
		// String round-trips.
		g, err := ParseFilter(f.String())
		if err != nil || g.Match(meta) != tc.want {
			t.Errorf("round trip of %q via %q: %v", tc.expr, f.String(), err)
		}
	}
}

func TestFilterParseErrors(t *testing.T) {
	deep := ""
	for i := 0; i < 40; i++ {
		deep += "("
	}
	deep += `a = 1`
	for i := 0; i < 40; i++ {
		deep += ")"
	}
	long := `a IN (`
	for i := 0; i < 1100; i++ {
		long += `1,`
	}
	for _, expr := range []string{
		``, `   `, `category`, `category =`, `= "x"`, `category = "x" AND`, `a < "x"`,
		`a IN "x"`, `a IN ()`, `a IN ("x"`, `(a = 1`, `a = 1)`, `a = "unterminated`,
		`a ! 1`, `a = 1 b = 2`, `AND = 1`, `a = 1e999`, `a = x`, deep, long + `1)`,
		string(make([]byte, 5000)),
	} {
		_, err := ParseFilter(expr)
		if !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("ParseFilter(%.40q) = %v, want ErrInvalidFilter", expr, err)
		}
	}
	_, err := ParseFilter(`category = "x" AND price >`)
	if err == nil || !strings.Contains(err.Error(), "at 26") {
		t.Errorf("error should name the position: %v", err)
	}
}

// min1 is 1 when ef is unset (0), else 0: for logging the effective ef.
func min1(ef int) int {
	if ef == 0 {
		return 1
	}
	return 0
}

func TestFilterFromJSON(t *testing.T) {
	meta := json.RawMessage(`{"category":"shoes","brand":"b","price":42,"tags":["red"]}`)
	cases := []struct {
		js   string
		want bool
	}{
		{`{"category":"shoes","brand":{"in":["a","b"]},"price":{"gte":10,"lt":100}}`, true},
		{`{"category":"hats"}`, false},
		{`{"brand":["a","c"]}`, false},
		{`{"brand":{"nin":["a","c"]}}`, true},
		{`{"price":42}`, true},
		{`{"price":{"ne":42}}`, false},
		{`{"tags":"red"}`, true},
		{`{"$or":[{"category":"hats"},{"tags":"red"}]}`, true},
		{`{"$not":{"category":"shoes"}}`, false},
		{`{"$and":[{"category":"shoes"},{"price":{"gt":50}}]}`, false},
	}
	for _, tc := range cases {
		f, err := FilterFromJSON(json.RawMessage(tc.js))
		if err != nil {
			t.Errorf("FilterFromJSON(%s): %v", tc.js, err)
			continue
		}
		if got := f.Match(meta); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.js, got, tc.want)
		}
	}
	for _, js := range []string{`[]`, `"x"`, `{}`, `{"a":{"foo":1}}`, `{"a":{"gt":"x"}}`, `{"a":{"in":[]}}`, `{"a":null}`, `{"$or":{}}`, `{"a":{"in":[{"x":1}]}}`, `{`} {
		if _, err := FilterFromJSON(json.RawMessage(js)); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("FilterFromJSON(%s) = %v, want ErrInvalidFilter", js, err)
		}
	}
}

// TestRecallCollection builds a 20k x 1280-d collection through the public
// API and checks recall@10 at the default EfSearch against exact search,
// unfiltered and under filters of several selectivities (each exercising a
// different strategy: postings + exact, sampling + exact, widened beam).
func TestRecallCollection(t *testing.T) {
	n, dim, nq := 20000, 1280, 100
	if testing.Short() {
		n, dim = 4000, 256
	}
	vecs := synth.Clustered(n+nq, dim, n/500, 1.0, 11)
	db := openTestDB(t, "", &Options{NoSync: true, SnapshotInterval: -1})
	c, err := db.CreateCollection("r", CollectionConfig{Fingerprint: "synthetic", Dims: dim})
	if err != nil {
		t.Fatal(err)
	}
	items := mkItems(vecs[:n], "p", func(i int) string {
		return fmt.Sprintf(`{"cat100":"c%d","cat5":"k%d","price":%d,"tags":["t%d"]}`, i%100, i%5, i%1000, i%2)
	})
	upsertAll(t, c, items, 500)
	qs := vecs[n:]
	check := func(name, expr string, ef int, min float64) {
		var f *Filter
		if expr != "" {
			f, err = ParseFilter(expr)
			if err != nil {
				t.Fatal(err)
			}
		}
		hit, tot := 0, 0
		for _, q := range qs {
			want, err := c.Search(ctx, q, SearchOptions{K: 10, Filter: f, Exact: true})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Search(ctx, q, SearchOptions{K: 10, Filter: f, Ef: ef})
			if err != nil {
				t.Fatal(err)
			}
			ids := map[string]bool{}
			for _, r := range want {
				ids[r.ID] = true
			}
			for _, r := range got {
				if !ids[r.ID] {
					continue
				}
				hit++
				if f != nil && !f.Match(r.Metadata) {
					t.Fatalf("%s: result %s violates the filter", name, r.ID)
				}
			}
			tot += len(want)
		}
		r := float64(hit) / float64(tot)
		t.Logf("%-22s recall@10 = %.4f (n=%d, dim=%d, ef=%d)", name, r, n, dim, max(ef, DefaultEfSearch*min1(ef)))
		if r < min {
			t.Errorf("%s: recall@10 %.4f < %.2f", name, r, min)
		}
	}
	// A small beam shows the data is not trivial (recall well below 1).
	check("unfiltered, ef=8", "", 8, 0)
	check("unfiltered", "", 0, 0.98)
	check("1% keyword", `cat100 = "c7"`, 0, 0.95)
	check("1% range (sampled)", `price >= 100 AND price < 110`, 0, 0.95)
	check("20% keyword (beam)", `cat5 = "k3"`, 0, 0.95)
	check("50% array OR", `tags = "t1" OR cat100 = "c2"`, 0, 0.95)

	// The widened-beam path alone under a 1% filter (bypassing the exact
	// fallback) still finds most true neighbours.
	f, _ := ParseFilter(`cat100 = "c7"`)
	c.mu.RLock()
	hit, tot := 0, 0
	accept := func(s uint32) bool { return f.match(&c.attrs[s]) }
	for _, q := range qs {
		want := c.g.exact(q, 10, nil, accept)
		got := c.g.search(q, 10, widen(DefaultEfSearch, 0.01), accept)
		w := map[uint32]bool{}
		for _, x := range want {
			w[x.id] = true
		}
		for _, x := range got {
			if w[x.id] {
				hit++
			}
		}
		tot += len(want)
	}
	c.mu.RUnlock()
	t.Logf("1%% keyword, beam only: recall@10 = %.4f", float64(hit)/float64(tot))
}
