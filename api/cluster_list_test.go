package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lookalike/lookalike/index"
)

// TestClusterModeListing: listing and counting items, the collections, their fields and the stats
// (and this node's feedback and rebuilds) answer in cluster mode from the cluster (the fake one),
// in the single node's shapes, with coverage when a shard did not answer; creating or dropping a
// collection is refused clearly.
func TestClusterModeListing(t *testing.T) {
	ts := newTestServer(t, nil)
	fc := &fakeCluster{items: map[string]index.Item{}, shards: 4, of: 4}
	ts.SetCluster(fc)
	for i := range 5 {
		id := fmt.Sprintf("p%d", i)
		fc.items[id] = index.Item{ID: id, Version: uint64(i + 1), Metadata: []byte(`{"brand":"x"}`), UpdatedAt: time.Now().UTC()}
	}
	base := ts.url + "/v1/collections/default"
	var page struct {
		Items []struct {
			ID           string         `json:"id"`
			Metadata     map[string]any `json:"metadata"`
			ThumbnailURL string         `json:"thumbnail_url"`
		} `json:"items"`
		Next     string           `json:"next_cursor"`
		Coverage *clusterCoverage `json:"coverage"`
	}
	var got []string
	for cursor, pages := "", 0; pages < 5; pages++ {
		r := do(t, "GET", base+"/items?limit=2&cursor="+cursor, "", nil)
		page.Next = ""
		r.json(t, &page)
		if r.status != http.StatusOK || len(page.Items) > 2 || page.Coverage != nil {
			t.Fatalf("page after %q: %d %s", cursor, r.status, r.body)
		}
		for _, it := range page.Items {
			if it.Metadata["brand"] != "x" || !strings.HasSuffix(it.ThumbnailURL, "/items/"+it.ID+"/thumbnail") {
				t.Errorf("listed item %+v", it)
			}
			got = append(got, it.ID)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if strings.Join(got, " ") != "p0 p1 p2 p3 p4" {
		t.Errorf("listed %v", got)
	}
	r := do(t, "GET", base+`/items?filter={"brand":"x"}&with_vector=true&min_seq=7`, "", nil)
	if l := fc.lastList; r.status != http.StatusOK || l.Filter != `brand = "x"` || !l.WithVector || l.MinSeq != 7 || l.Limit != 50 {
		t.Errorf("filtered listing: %d, passed %+v", r.status, l)
	}
	for _, q := range []string{"limit=0", "filter=brand%20%3D%3D", "min_seq=x", "with_vector=maybe"} {
		if r := do(t, "GET", base+"/items?"+q, "", nil); r.status != http.StatusBadRequest {
			t.Errorf("items?%s: %d %s", q, r.status, r.body)
		}
	}
	if r := do(t, "GET", base+"/items:count?filter=brand%20%3D%20%27x%27", "", nil); r.status != http.StatusOK || string(r.body) != `{"count":5}` || !fc.lastList.Count {
		t.Errorf("count: %d %s", r.status, r.body)
	}
	var cols struct {
		Collections []collectionJSON `json:"collections"`
	}
	r = do(t, "GET", ts.url+"/v1/collections", "", nil)
	r.json(t, &cols)
	if r.status != http.StatusOK || len(cols.Collections) != 1 || cols.Collections[0].Name != "default" || cols.Collections[0].Count != 5 ||
		cols.Collections[0].Dims == 0 || cols.Collections[0].Fingerprint == "" || cols.Collections[0].Coverage != nil {
		t.Errorf("collections: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", base, "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"count":5`) || !strings.Contains(string(r.body), `"profile"`) {
		t.Errorf("collection: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", ts.url+"/v1/stats", "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"count":5`) {
		t.Errorf("stats: %d %s", r.status, r.body)
	}

	if r := do(t, "GET", base+"/fields", "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"name":"brand","type":"keyword","values":["x"]`) {
		t.Errorf("fields: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", ts.url+"/v1/rebuilds", "", nil); r.status != http.StatusOK {
		t.Errorf("rebuilds: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", base+"/feedback", "application/json", strings.NewReader(`{"query_id":"q1","results":[{"id":"p1","relevant":true}]}`)); r.status != http.StatusAccepted {
		t.Errorf("feedback: %d %s", r.status, r.body)
	}

	// One shard of four silent: every answer says so.
	fc.mu.Lock()
	fc.shards = 3
	fc.mu.Unlock()
	cover := `"coverage":{"shards":3,"of":4}`
	for _, path := range []string{base + "/items", base + "/items:count", base, ts.url + "/v1/collections", ts.url + "/v1/stats"} {
		if r := do(t, "GET", path, "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), cover) {
			t.Errorf("GET %s with a shard missing: %d %s", path, r.status, r.body)
		}
	}
	fc.mu.Lock()
	fc.down = true
	fc.mu.Unlock()
	for _, path := range []string{base + "/items", base + "/items:count", ts.url + "/v1/collections"} {
		if r := do(t, "GET", path, "", nil); r.status != http.StatusServiceUnavailable || r.errorCode(t) != "cluster_unavailable" {
			t.Errorf("GET %s without shards: %d %s", path, r.status, r.body)
		}
	}
	for _, tc := range []struct{ method, path string }{{"POST", "/v1/collections"}, {"DELETE", "/v1/collections/default?confirm=default"}} {
		r := do(t, tc.method, ts.url+tc.path, "application/json", strings.NewReader(`{"name":"other"}`))
		if r.status != http.StatusNotImplemented || r.errorCode(t) != "not_in_cluster_mode" || !strings.Contains(string(r.body), "not created or dropped") {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, r.status, r.body)
		}
	}
}
