package api

// Query limits and paging (docs/reliability.md, "Query limits and paging"): one set of limits, the
// index's, enforced by the parser with invalid_query errors that name the parameter; cursors that
// page up to the result window and stop there; non-finite numbers refused in parameters and
// metadata; negative scores returned; drops and unknown filter fields reported as such.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/bench/synth"
)

// apiError is the decoded error shape with its details.
type apiError struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

func (r response) apiError(t testing.TB) apiError {
	t.Helper()
	var e struct {
		Error apiError `json:"error"`
	}
	r.json(t, &e)
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("error response without code/message: %s", r.body)
	}
	return e.Error
}

// wantInvalidQuery fails the test unless r is 400 invalid_query naming param.
func wantInvalidQuery(t testing.TB, r response, param string) {
	t.Helper()
	if r.status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %.300s", r.status, r.body)
	}
	if e := r.apiError(t); e.Code != "invalid_query" || e.Details["parameter"] != param {
		t.Fatalf("code %q parameter %v, want invalid_query naming %q: %s", e.Code, e.Details["parameter"], param, e.Message)
	}
}

// oneBatchError returns the status and error of a one-item batch's only result, failing the test
// when the batch did not answer 200 with exactly one failed item.
func oneBatchError(t testing.TB, r response) (int, apiError) {
	t.Helper()
	var out struct {
		Results []struct {
			Status int       `json:"status"`
			Error  *apiError `json:"error"`
		} `json:"results"`
	}
	r.json(t, &out)
	if r.status != http.StatusOK || len(out.Results) != 1 || out.Results[0].Error == nil {
		t.Fatalf("batch: %d %.300s", r.status, r.body)
	}
	return out.Results[0].Status, *out.Results[0].Error
}

// putItems stores items straight into the server's index: the tests here are about queries, and
// synthetic vectors make rankings exact and cheap to build.
func (ts *testServer) putItems(t testing.TB, collection string, items ...index.Item) {
	t.Helper()
	col, err := ts.db.Collection(collection)
	if err != nil {
		t.Fatal(err)
	}
	if err := col.Upsert(context.Background(), items...); err != nil {
		t.Fatal(err)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func vectorJSON(v []float32) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (ts *testServer) searchJSON(t testing.TB, body string) (response, searchResponse) {
	t.Helper()
	r := do(t, "POST", ts.url+"/v1/collections/default/search", "application/json", strings.NewReader(body))
	var sr searchResponse
	if r.status == http.StatusOK {
		r.json(t, &sr)
	}
	return r, sr
}

// pageAll follows next_cursor from first (a function of the cursor) until it is empty and returns
// every page's ids; any non-200 fails the test.
func pageAll(t *testing.T, first func(cursor string) (response, searchResponse)) [][]string {
	t.Helper()
	var pages [][]string
	cursor := ""
	for len(pages) < 2*index.MaxK {
		r, sr := first(cursor)
		if r.status != http.StatusOK {
			t.Fatalf("page %d (cursor %q): %d %.300s", len(pages)+1, cursor, r.status, r.body)
		}
		pages = append(pages, ids(sr.Results))
		if cursor = sr.NextCursor; cursor == "" {
			return pages
		}
	}
	t.Fatal("paging never ended")
	return nil
}

func distinct(pages [][]string) (total int, unique int) {
	seen := map[string]bool{}
	for _, p := range pages {
		for _, id := range p {
			total++
			seen[id] = true
		}
	}
	return total, len(seen)
}

// TestPagingAndLimitsAgree: the documented limits (k up to limits.max_k = index.MaxK, ef up to
// index.MaxEf) are accepted, cursors page to the result window and then stop (no next_cursor), and
// everything outside is 400 invalid_query naming the parameter.
func TestPagingAndLimitsAgree(t *testing.T) {
	ts := newTestServer(t, nil)
	dims := ts.eng.Info().Dims
	n := index.MaxK + 50 // more items than the window: paging must stop at the window, not at the end
	vecs := synth.Clustered(n, dims, 20, 0.3, 7)
	items := make([]index.Item, n)
	for i := range items {
		items[i] = index.Item{ID: fmt.Sprintf("s%04d", i), Vector: vecs[i], Metadata: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
	}
	ts.putItems(t, "default", items...)
	q := vectorJSON(vecs[0])

	t.Run("k = max_k in one page", func(t *testing.T) {
		r, sr := ts.searchJSON(t, fmt.Sprintf(`{"vector":%s,"k":%d}`, q, index.MaxK))
		if r.status != http.StatusOK {
			t.Fatalf("%d %.300s", r.status, r.body)
		}
		if len(sr.Results) != index.MaxK || sr.NextCursor != "" {
			t.Fatalf("%d results, next_cursor %q; want %d and none", len(sr.Results), sr.NextCursor, index.MaxK)
		}
	})
	for _, k := range []int{100, 300, 7} {
		t.Run(fmt.Sprintf("search cursors with k=%d reach the window", k), func(t *testing.T) {
			pages := pageAll(t, func(cursor string) (response, searchResponse) {
				return ts.searchJSON(t, fmt.Sprintf(`{"vector":%s,"k":%d,"cursor":%q}`, q, k, cursor))
			})
			total, unique := distinct(pages)
			if total != index.MaxK || unique != index.MaxK {
				t.Fatalf("%d pages held %d results (%d distinct), want the %d of the window", len(pages), total, unique, index.MaxK)
			}
			if want := (index.MaxK + k - 1) / k; len(pages) != want {
				t.Fatalf("%d pages, want %d", len(pages), want)
			}
		})
	}
	t.Run("similar cursors reach the window", func(t *testing.T) {
		pages := pageAll(t, func(cursor string) (response, searchResponse) {
			r := do(t, "GET", ts.url+"/v1/collections/default/items/s0000/similar?diversify=false&k=100&cursor="+url.QueryEscape(cursor), "", nil)
			var sr searchResponse
			if r.status == http.StatusOK {
				r.json(t, &sr)
			}
			return r, sr
		})
		if total, unique := distinct(pages); total != index.MaxK || unique != index.MaxK || len(pages) != 10 {
			t.Fatalf("%d pages held %d results (%d distinct)", len(pages), total, unique)
		}
	})
	t.Run("ef = MaxEf accepted", func(t *testing.T) {
		if r, _ := ts.searchJSON(t, fmt.Sprintf(`{"vector":%s,"k":5,"ef":%d}`, q, index.MaxEf)); r.status != http.StatusOK {
			t.Fatalf("%d %.300s", r.status, r.body)
		}
	})

	similar := "/v1/collections/default/items/s0000/similar?"
	search := func(extra string) string { return fmt.Sprintf(`{"vector":%s%s}`, q, extra) }
	cases := []struct {
		name, method, path, body, param string
	}{
		{"k=0 (json)", "POST", "/v1/collections/default/search", search(`,"k":0`), "k"},
		{"k=0 (query)", "GET", similar + "k=0", "", "k"},
		{"k negative", "POST", "/v1/collections/default/search", search(`,"k":-1`), "k"},
		{"k over max_k", "POST", "/v1/collections/default/search", search(fmt.Sprintf(`,"k":%d`, index.MaxK+1)), "k"},
		{"k not a number", "GET", similar + "k=ten", "", "k"},
		{"ef over MaxEf", "POST", "/v1/collections/default/search", search(fmt.Sprintf(`,"ef":%d`, index.MaxEf+1)), "ef"},
		{"ef 10000", "GET", similar + "ef=10000", "", "ef"},
		{"ef negative", "GET", similar + "ef=-1", "", "ef"},
		{"forged cursor", "POST", "/v1/collections/default/search", search(`,"cursor":"forged"`), "cursor"},
		{"cursor past the window", "GET", similar + "cursor=" + encodeCursor(index.MaxK), "", "cursor"},
		{"too many exclude_ids", "GET", similar + "exclude_ids=" + strings.Repeat("a,", 1001) + "b", "", "exclude_ids"},
		{"exact not a bool", "GET", similar + "exact=maybe", "", "exact"},
		{"list limit 0", "GET", "/v1/collections/default/items?limit=0", "", "limit"},
		{"list limit over", "GET", "/v1/collections/default/items?limit=1001", "", "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ct := ""
			if tc.body != "" {
				ct = "application/json"
			}
			wantInvalidQuery(t, do(t, tc.method, ts.url+tc.path, ct, strings.NewReader(tc.body)), tc.param)
		})
	}
}

// TestNonFiniteParametersRefused: NaN and ±Inf parse as floats, and every range check compares
// false against NaN; they must be refused by name, not accepted as "no limit".
func TestNonFiniteParametersRefused(t *testing.T) {
	ts := newTestServer(t, nil)
	dims := ts.eng.Info().Dims
	ts.putItems(t, "default", index.Item{ID: "a", Vector: synth.Clustered(1, dims, 1, 0.3, 1)[0]})
	for _, v := range []string{"NaN", "nan", "Inf", "+Inf", "-Inf", "Infinity", "1e39"} {
		t.Run("min_score="+v, func(t *testing.T) {
			wantInvalidQuery(t, do(t, "GET", ts.url+"/v1/collections/default/items/a/similar?min_score="+url.QueryEscape(v), "", nil), "min_score")
			body, ct := multipartBody(t, part{"id", "", []byte("a")}, part{"min_score", "", []byte(v)})
			wantInvalidQuery(t, do(t, "POST", ts.url+"/v1/collections/default/search", ct, body), "min_score")
		})
	}
	fm := newServerWith(t, featureMapEngine(t), nil)
	for _, v := range []string{"NaN", "Inf", "-Inf"} {
		t.Run("alpha="+v, func(t *testing.T) {
			wantInvalidQuery(t, do(t, "GET", fm.url+"/v1/collections/default/search/explain?query_id=a&id=b&alpha="+url.QueryEscape(v), "", nil), "alpha")
		})
	}
}

// TestMetadataNumbersMustBeFinite: 1e400 is valid JSON but no float64; stored, it could never match
// a numeric filter, so it is refused with the field's path.
func TestMetadataNumbersMustBeFinite(t *testing.T) {
	ts := newTestServer(t, nil)
	img := tinyPNG()
	cases := []struct{ meta, field string }{
		{`{"price":1e400}`, "price"},
		{`{"price":-1e400}`, "price"},
		{`{"dims":{"w":[1,2,-1e999]}}`, "dims.w[2]"},
		{`{"ok":1e308,"bad":[{"x":9e999}]}`, "bad[0].x"},
	}
	for i, tc := range cases {
		t.Run(tc.meta, func(t *testing.T) {
			id := fmt.Sprintf("m%d", i)
			body, ct := multipartBody(t, part{"image", "x.png", img}, part{"id", "", []byte(id)}, part{"metadata", "", []byte(tc.meta)})
			r := do(t, "POST", ts.url+"/v1/collections/default/items", ct, body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("add: %d %.300s", r.status, r.body)
			}
			if e := r.apiError(t); e.Code != "invalid_metadata" || e.Details["field"] != tc.field {
				t.Fatalf("add: %s %v %s", e.Code, e.Details, e.Message)
			}
			line := fmt.Sprintf(`{"id":%q,"image":%q,"metadata":%s}`, id, "data:image/png;base64,"+b64(img), tc.meta)
			r = do(t, "POST", ts.url+"/v1/collections/default/items:batch", "application/x-ndjson", strings.NewReader(line))
			if status, e := oneBatchError(t, r); status != 400 || e.Code != "invalid_metadata" || e.Details["field"] != tc.field {
				t.Fatalf("batch: %d %s %v", status, e.Code, e.Details)
			}
			if g := do(t, "GET", ts.url+"/v1/collections/default/items/"+id, "", nil); g.status != http.StatusNotFound {
				t.Fatalf("refused item was stored: %d", g.status)
			}
		})
	}
	body, ct := multipartBody(t, part{"image", "x.png", img}, part{"id", "", []byte("big")}, part{"metadata", "", []byte(`{"price":1e308,"tiny":1e-400}`)})
	if r := do(t, "POST", ts.url+"/v1/collections/default/items", ct, body); r.status != http.StatusCreated {
		t.Fatalf("finite extremes refused: %d %.300s", r.status, r.body)
	}
}

// TestNegativeScoresAreResults: cosines below zero are still the nearest items; only an explicit
// min_score cuts them.
func TestNegativeScoresAreResults(t *testing.T) {
	ts := newTestServer(t, nil)
	dims := ts.eng.Info().Dims
	axis := func(w ...float32) []float32 {
		v := make([]float32, dims)
		copy(v, w)
		return v
	}
	ts.putItems(t, "default",
		index.Item{ID: "x", Vector: axis(1)},
		index.Item{ID: "y", Vector: axis(0, 1)},
		index.Item{ID: "z", Vector: axis(0, 0, 1)},
		index.Item{ID: "anti", Vector: axis(-1, -1, -1)})
	q := vectorJSON(axis(-3, -2, -1, 0.5)) // negative against x, y, z; positive only against anti
	r, sr := ts.searchJSON(t, fmt.Sprintf(`{"vector":%s,"k":4}`, q))
	if r.status != 200 || len(sr.Results) != 4 || strings.Join(ids(sr.Results), ",") != "anti,z,y,x" {
		t.Fatalf("want anti,z,y,x: %d %.400s", r.status, r.body)
	}
	if sr.Results[3].Score >= 0 || sr.Results[3].Score < -1 {
		t.Fatalf("x scored %v, want a negative cosine", sr.Results[3].Score)
	}
	if _, sr := ts.searchJSON(t, fmt.Sprintf(`{"vector":%s,"k":4,"min_score":0}`, q)); len(sr.Results) != 1 {
		t.Fatalf("explicit min_score 0 kept %v", ids(sr.Results))
	}
	// Similar to anti: every other item is at cosine -0.577.
	s := do(t, "GET", ts.url+"/v1/collections/default/items/anti/similar?k=3&diversify=false", "", nil)
	var ssr searchResponse
	s.json(t, &ssr)
	if s.status != 200 || len(ssr.Results) != 3 {
		t.Fatalf("similar: %d %.300s", s.status, s.body)
	}
}

// gatedEmbedder holds every Embed call until release is closed, so a test can act while a request
// is inside the handler.
type gatedEmbedder struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gatedEmbedder) Embed(ctx context.Context, imgs []embed.Image) ([]embed.Embedding, error) {
	g.once.Do(func() { close(g.entered) })
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	out := make([]embed.Embedding, len(imgs))
	for i := range out {
		out[i].Vector = []float32{1, 0, 0, 0}
	}
	return out, nil
}

func (g *gatedEmbedder) Info() embed.Info {
	return embed.Info{ModelID: "gate", Fingerprint: "gate-000000000000", Dims: 4}
}

// TestIngestIntoDroppedCollection: an item whose collection is dropped while it is being embedded
// is refused as collection_dropped, not as a server shutdown.
func TestIngestIntoDroppedCollection(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			g := &gatedEmbedder{entered: make(chan struct{}), release: make(chan struct{})}
			ts := startTestServer(t, g, nil, nil)
			done := make(chan response, 1)
			go func() {
				img := tinyPNG()
				if batch {
					line := fmt.Sprintf(`{"id":"a","image":%q}`, b64(img))
					done <- do(t, "POST", ts.url+"/v1/collections/default/items:batch", "application/x-ndjson", strings.NewReader(line))
					return
				}
				body, ct := multipartBody(t, part{"image", "a.png", img}, part{"id", "", []byte("a")})
				done <- do(t, "POST", ts.url+"/v1/collections/default/items", ct, body)
			}()
			<-g.entered
			if r := do(t, "DELETE", ts.url+"/v1/collections/default?confirm=default", "", nil); r.status != 200 {
				t.Fatalf("drop: %d %s", r.status, r.body)
			}
			close(g.release)
			r := <-done
			var e apiError
			if batch {
				r.status, e = oneBatchError(t, r)
			} else {
				e = r.apiError(t)
			}
			if r.status != http.StatusNotFound || e.Code != "collection_dropped" {
				t.Fatalf("status %d code %q, want 404 collection_dropped: %s", r.status, e.Code, e.Message)
			}
		})
	}
}

// TestFilterOnUnknownField: a filter naming a field no item has is a typo, not an empty result.
func TestFilterOnUnknownField(t *testing.T) {
	ts := newTestServer(t, nil)
	dims := ts.eng.Info().Dims
	vecs := synth.Clustered(6, dims, 2, 0.3, 3)
	for i, v := range vecs {
		ts.putItems(t, "default", index.Item{ID: fmt.Sprintf("f%d", i), Vector: v,
			Metadata: json.RawMessage(fmt.Sprintf(`{"category":"c%d","price":%d,"dims":{"w":%d},"tags":["t"]}`, i%2, i, i))})
	}
	info := ts.eng.Info()
	if _, err := ts.db.CreateCollection("empty", index.CollectionConfig{Fingerprint: info.Fingerprint, Dims: info.Dims}); err != nil {
		t.Fatal(err)
	}
	q := vectorJSON(vecs[0])
	cases := []struct {
		name, filter string
		unknown      string // "" = accepted
	}{
		{"expression", `colour = "red"`, "colour"},
		{"json", `{"colour":"red"}`, "colour"},
		{"under NOT", `NOT colour = "red"`, "colour"},
		{"one of several", `category = "c1" AND prize < 3`, "prize"},
		{"nested object itself", `dims > 1`, "dims"},
		{"known keyword", `category = "c1"`, ""},
		{"known dotted", `dims.w >= 2`, ""},
		{"known array", `tags = "t" AND price < 4`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			filter, _ := json.Marshal(tc.filter)
			if strings.HasPrefix(tc.filter, "{") {
				filter = []byte(tc.filter)
			}
			r, _ := ts.searchJSON(t, fmt.Sprintf(`{"vector":%s,"filter":%s}`, q, filter))
			s := do(t, "GET", ts.url+"/v1/collections/default/items/f0/similar?filter="+url.QueryEscape(tc.filter), "", nil)
			for _, r := range []response{r, s} {
				if tc.unknown == "" {
					if r.status != 200 {
						t.Fatalf("%d %.300s", r.status, r.body)
					}
					continue
				}
				if r.status != http.StatusBadRequest {
					t.Fatalf("status %d, want 400: %.300s", r.status, r.body)
				}
				e := r.apiError(t)
				known, _ := json.Marshal(e.Details["known_fields"])
				if e.Code != "unknown_field" || e.Details["field"] != tc.unknown || string(known) != `["category","dims.w","price","tags"]` {
					t.Fatalf("%s %v: %s", e.Code, e.Details, e.Message)
				}
			}
		})
	}
	// An empty collection knows no fields yet: the filter is answered (no results), not refused.
	r := do(t, "POST", ts.url+"/v1/collections/empty/search", "application/json", strings.NewReader(fmt.Sprintf(`{"vector":%s,"filter":"colour = 1"}`, q)))
	if r.status != 200 {
		t.Fatalf("empty collection: %d %.300s", r.status, r.body)
	}
}

// TestFieldsSayWhenValuesAreCut: /fields lists at most fieldsListedValues values per keyword field
// and marks the field truncated when there were more.
func TestFieldsSayWhenValuesAreCut(t *testing.T) {
	ts := newTestServer(t, nil)
	dims := ts.eng.Info().Dims
	n := fieldsListedValues + 10
	vecs := synth.Clustered(n, dims, 4, 0.3, 5)
	items := make([]index.Item, n)
	for i := range items {
		items[i] = index.Item{ID: fmt.Sprintf("i%03d", i), Vector: vecs[i],
			Metadata: json.RawMessage(fmt.Sprintf(`{"sku":"sku-%03d","colour":"c%d","price":%d}`, i, i%3, i))}
	}
	ts.putItems(t, "default", items...)
	r := do(t, "GET", ts.url+"/v1/collections/default/fields", "", nil)
	var out struct {
		Fields []struct {
			Name      string   `json:"name"`
			Values    []string `json:"values"`
			Count     int      `json:"count"`
			Truncated bool     `json:"truncated"`
		} `json:"fields"`
	}
	r.json(t, &out)
	got := map[string]string{}
	for _, f := range out.Fields {
		got[f.Name] = fmt.Sprintf("values=%d count=%d truncated=%v", len(f.Values), f.Count, f.Truncated)
	}
	want := map[string]string{
		"sku":    fmt.Sprintf("values=%d count=%d truncated=true", fieldsListedValues, n),
		"colour": fmt.Sprintf("values=3 count=%d truncated=false", n),
		"price":  fmt.Sprintf("values=0 count=%d truncated=false", n),
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("field %s: %s, want %s", k, got[k], w)
		}
	}
	if !strings.Contains(string(r.body), `"truncated"`) {
		t.Errorf("no truncated flag: %.300s", r.body)
	}
}
