package api

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/index"
)

// clusterAnswer is the part of a search answer (or of one batch answer) these tests read.
type clusterAnswer struct {
	Status     int              `json:"status"`
	Results    []resultJSON     `json:"results"`
	NextCursor string           `json:"next_cursor"`
	Rerank     string           `json:"rerank"`
	Coverage   *clusterCoverage `json:"coverage"`
}

// TestClusterModeQueries: cursors, exclude_ids, min_score and searches by item id; search,
// similar and recommend batches; recommend (the single node's query, examples excluded), on the
// fake cluster.
func TestClusterModeQueries(t *testing.T) {
	ts := newTestServer(t, nil)
	fc := &fakeCluster{items: map[string]index.Item{}, shards: 4, of: 4}
	ts.SetCluster(fc)
	for i, name := range []string{"ukbench00000.jpg", "ukbench00001.jpg", "ukbench00004.jpg", "ukbench00008.jpg", "ukbench00012.jpg"} {
		body, ct := multipartBody(t, part{"image", name, photo(t, name)}, part{field: "id", data: []byte(fmt.Sprintf("p%d", i))})
		if r := do(t, "POST", ts.url+"/v1/collections/default/items", ct, body); r.status != http.StatusCreated {
			t.Fatalf("add %s: %d %s", name, r.status, r.body)
		}
	}
	vec, _ := json.Marshal(fc.items["p0"].Vector)
	post := func(path, body string) response {
		return do(t, "POST", ts.url+"/v1/collections/default/"+path, "application/json", strings.NewReader(body))
	}
	search := func(extra string) clusterAnswer {
		t.Helper()
		var a clusterAnswer
		r := post("search", `{"vector":`+string(vec)+extra+`}`)
		if r.json(t, &a); r.status != http.StatusOK {
			t.Fatalf("search %s: %d %s", extra, r.status, r.body)
		}
		return a
	}

	// Cursors page through the ranking of k = 5 in pages of 2, and the last page has none.
	all := search(`,"k":5`)
	if len(all.Results) != 5 || all.NextCursor != "" || all.Rerank != "none" || all.Results[0].ID != "p0" {
		t.Fatalf("k=5: %+v", all)
	}
	var paged []string
	cursor := ""
	for page := 0; page < 3; page++ {
		a := search(`,"k":2,"cursor":"` + cursor + `"`)
		paged = append(paged, ids(a.Results)...)
		if cursor = a.NextCursor; (cursor == "") != (page == 2) {
			t.Fatalf("page %d: next_cursor %q", page, cursor)
		}
	}
	if !slices.Equal(paged, ids(all.Results)) {
		t.Errorf("pages %v, the whole ranking %v", paged, ids(all.Results))
	}
	if r := post("search", `{"vector":`+string(vec)+`,"cursor":"bogus"}`); r.status != http.StatusBadRequest || r.errorCode(t) != "invalid_query" {
		t.Errorf("bad cursor: %d %s", r.status, r.body)
	}

	// exclude_ids are passed to the shards, which still fill k; a search by id leaves the item out.
	a := search(`,"k":2,"exclude_ids":["p0","nope"],"exact":true`)
	if slices.Contains(ids(a.Results), "p0") || len(a.Results) != 2 || !fc.lastQuery.Exact || !slices.Contains(fc.lastQuery.ExcludeIDs, "nope") {
		t.Errorf("exclude_ids: %v (passed %+v)", ids(a.Results), fc.lastQuery.ExcludeIDs)
	}
	var byID clusterAnswer
	r := post("search", `{"id":"p0","k":4}`)
	if r.json(t, &byID); r.status != http.StatusOK || !slices.Equal(ids(byID.Results), ids(all.Results)[1:]) {
		t.Errorf("search by id: %d %s, want %v", r.status, r.body, ids(all.Results)[1:])
	}
	if r := post("search", `{"id":"nope"}`); r.status != http.StatusNotFound || r.errorCode(t) != "item_not_found" {
		t.Errorf("search by a missing id: %d %s", r.status, r.body)
	}
	cut := all.Results[1].Score
	if a := search(fmt.Sprintf(`,"k":5,"min_score":%v`, cut)); len(a.Results) != 2 {
		t.Errorf("min_score %v: %v, want the top 2 of %+v", cut, ids(a.Results), all.Results)
	}

	// Batches: one answer per query, in order, each with its own status.
	var batch struct {
		Results []clusterAnswer `json:"results"`
	}
	r = post("search:batch", `{"searches":[{"vector":`+string(vec)+`,"k":2},{"id":"nope"},{"id":"p1","k":1,"cursor":"`+all.NextCursor+`"}]}`)
	if r.json(t, &batch); r.status != http.StatusOK || len(batch.Results) != 3 || batch.Results[0].Status != 200 || batch.Results[0].NextCursor == "" ||
		batch.Results[1].Status != 404 || batch.Results[2].Status != 200 || len(batch.Results[2].Results) != 1 || batch.Results[2].Results[0].ID == "p1" {
		t.Errorf("search:batch: %d %s", r.status, r.body)
	}
	r = post("similar:batch", `{"ids":["p1","nope"],"k":3,"filter":{"brand":"x"}}`)
	if r.json(t, &batch); r.status != http.StatusOK || len(batch.Results) != 2 || batch.Results[0].Status != 200 ||
		slices.Contains(ids(batch.Results[0].Results), "p1") || len(batch.Results[0].Results) != 3 || batch.Results[1].Status != 404 {
		t.Errorf("similar:batch: %d %s", r.status, r.body)
	}

	// Recommend: one positive example searches with its (unit) vector, without it.
	var rec clusterAnswer
	r = post("recommend", `{"positive":["p0"],"k":4}`)
	if r.json(t, &rec); r.status != http.StatusOK || !slices.Equal(ids(rec.Results), ids(all.Results)[1:]) {
		t.Fatalf("recommend: %d %s, want %v", r.status, r.body, ids(all.Results)[1:])
	}
	if c := cosine(fc.lastQuery.Vector, fc.items["p0"].Vector); math.Abs(float64(c)-1) > 1e-5 || !slices.Contains(fc.lastQuery.ExcludeIDs, "p0") {
		t.Errorf("recommend by one example: cosine to it %v, exclusions %v", c, fc.lastQuery.ExcludeIDs)
	}
	r = post("recommend", `{"positive":["p0",{"id":"p2","weight":2}],"negative":["p1"],"k":4}`)
	if r.json(t, &rec); r.status != http.StatusOK || len(rec.Results) != 2 || slices.ContainsFunc(ids(rec.Results), func(id string) bool { return id <= "p2" }) {
		t.Errorf("recommend with a negative: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"positive":["nope"]}`, http.StatusNotFound, "item_not_found"},
		{`{"negative":["p1"]}`, http.StatusBadRequest, ""},
		{`{"positive":[{"id":"p0","vector":[1]}]}`, http.StatusBadRequest, ""},
	} {
		r := post("recommend", tc.body)
		if r.status != tc.status || tc.code != "" && r.errorCode(t) != tc.code {
			t.Errorf("recommend %s: %d %s, want %d %s", tc.body, r.status, r.body, tc.status, tc.code)
		}
	}
	fc.mu.Lock()
	fc.shards = 3
	fc.mu.Unlock()
	r = post("recommend:batch", `{"recommendations":[{"positive":["p0"],"k":1},{"positive":["nope"]}]}`)
	if r.json(t, &batch); r.status != http.StatusOK || len(batch.Results) != 2 || batch.Results[0].Status != 200 ||
		batch.Results[0].Coverage == nil || batch.Results[0].Coverage.Shards != 3 || batch.Results[1].Status != 404 {
		t.Errorf("recommend:batch with a shard missing: %d %s", r.status, r.body)
	}
}

// TestClusterModeExplain: the heatmap of a cluster node (items and the average match read through
// the cluster) is the single node's for the same items.
func TestClusterModeExplain(t *testing.T) {
	eng := featureMapEngine(t)
	single := newServerWith(t, eng, nil)
	ts := newServerWith(t, eng, nil)
	fc := &fakeCluster{items: map[string]index.Item{}, shards: 4, of: 4}
	ts.SetCluster(fc)
	for i := range 4 {
		single.addPhoto(t, ukName(i), `{}`)
		ts.addPhoto(t, ukName(i), `{}`)
	}
	const path = "/v1/collections/default/search/explain?format=json&query_id=ukbench00001&id=ukbench00002"
	var want, got explainJSON
	if r := do(t, "GET", single.url+path, "", nil); r.status != http.StatusOK {
		t.Fatalf("single node: %d %s", r.status, r.body)
	} else {
		r.json(t, &want)
	}
	r := do(t, "GET", ts.url+path, "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("cluster node: %d %s", r.status, r.body)
	}
	r.json(t, &got)
	if got.Rows != want.Rows || got.Cols != want.Cols || got.Crop != want.Crop || math.Abs(float64(got.Score-want.Score)) > 1e-4 {
		t.Fatalf("cluster %+v, single node %+v", got, want)
	}
	for y, row := range want.Grid {
		for x, v := range row {
			if d := math.Abs(float64(got.Grid[y][x] - v)); d > 1e-3 {
				t.Fatalf("grid[%d][%d]: cluster %v, single node %v", y, x, got.Grid[y][x], v)
			}
		}
	}
	if r := do(t, "GET", ts.url+"/v1/collections/default/search/explain?query_id=ukbench00001&id=ukbench00002", "", nil); r.status != http.StatusOK || r.header.Get("Content-Type") != "image/png" {
		t.Errorf("png: %d %s", r.status, r.header.Get("Content-Type"))
	}
	if r := do(t, "GET", ts.url+"/v1/collections/default/search/explain?query_id=nope&id=ukbench00002", "", nil); r.status != http.StatusNotFound || r.errorCode(t) != "item_not_found" {
		t.Errorf("missing query item: %d %s", r.status, r.body)
	}
}
