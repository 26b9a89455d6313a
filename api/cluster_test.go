package api

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/lookalike/lookalike/index"
)

// fakeCluster is an api.Cluster in memory: what the HTTP front does with a cluster's answers
// (the real one, on NATS, is tested in package cluster and by cmd/lookalike's TestCluster3Nodes).
type fakeCluster struct {
	mu         sync.Mutex
	items      map[string]index.Item
	seq        uint64
	down       bool // writes and searches: ErrClusterUnavailable
	shards, of int
	lastK      int
	lastFilter string
}

func (f *fakeCluster) Upsert(_ context.Context, _ string, it index.Item) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return 0, ErrClusterUnavailable
	}
	f.seq++
	it.Version = f.seq
	f.items[it.ID] = it
	return f.seq, nil
}

func (f *fakeCluster) Delete(_ context.Context, _, id string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return 0, ErrClusterUnavailable
	}
	f.seq++
	delete(f.items, id)
	return f.seq, nil
}

func (f *fakeCluster) Get(_ context.Context, _, id string) (index.Item, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	it, ok := f.items[id]
	if !ok {
		return index.Item{}, index.ErrNotFound
	}
	return it, nil
}

func (f *fakeCluster) Search(_ context.Context, _ string, _ []float32, k int, filter string) ([]index.Result, int, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastK, f.lastFilter = k, filter
	if f.down {
		return nil, 0, 0, ErrClusterUnavailable
	}
	var out []index.Result
	for id, it := range f.items {
		out = append(out, index.Result{ID: id, Score: 1, Metadata: it.Metadata})
	}
	return out, f.shards, f.of, nil
}

func (f *fakeCluster) Status(context.Context) (any, error) {
	return map[string]any{"node": "n1", "replicas": []any{}}, nil
}

func TestClusterModeRoutes(t *testing.T) {
	single := newTestServer(t, nil)
	if r := do(t, "GET", single.url+"/v1/cluster", "", nil); r.status != http.StatusNotFound || r.errorCode(t) != "not_clustered" {
		t.Fatalf("single node GET /v1/cluster: %d %s", r.status, r.body)
	}

	ts := newTestServer(t, nil)
	fc := &fakeCluster{items: map[string]index.Item{}, shards: 4, of: 4}
	ts.SetCluster(fc)
	img := photo(t, "ukbench00000.jpg")
	add := func(id string) response {
		body, ct := multipartBody(t, part{"image", "a.jpg", img}, part{field: "id", data: []byte(id)}, part{field: "metadata", data: []byte(`{"brand":"x"}`)})
		return do(t, "POST", ts.url+"/v1/collections/default/items", ct, body)
	}
	if r := add("p1"); r.status != http.StatusCreated || !strings.Contains(string(r.body), `"seq":1`) {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	if it := fc.items["p1"]; len(it.Vector) == 0 || len(it.Thumbnail) == 0 || it.ContentHash == "" || string(it.Metadata) != `{"brand":"x"}` {
		t.Fatalf("published item incomplete: dims %d thumb %d hash %q meta %s", len(it.Vector), len(it.Thumbnail), it.ContentHash, it.Metadata)
	}
	if n, _ := ts.db.Collection("default"); n.Info().Count != 0 {
		t.Fatal("cluster mode wrote to the local store")
	}
	if r := do(t, "GET", ts.url+"/v1/collections/default/items/p1", "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"brand":"x"`) {
		t.Fatalf("get: %d %s", r.status, r.body)
	}

	search := func() response {
		body, ct := multipartBody(t, part{"image", "q.jpg", img}, part{field: "k", data: []byte("3")}, part{field: "filter", data: []byte(`brand = 'x'`)})
		return do(t, "POST", ts.url+"/v1/collections/default/search", ct, body)
	}
	if r := search(); r.status != http.StatusOK || strings.Contains(string(r.body), "coverage") || !strings.Contains(string(r.body), `"p1"`) {
		t.Fatalf("full search: %d %s", r.status, r.body)
	}
	if fc.lastK != 3 || fc.lastFilter != `brand = 'x'` {
		t.Fatalf("search passed k %d filter %q", fc.lastK, fc.lastFilter)
	}
	fc.mu.Lock()
	fc.shards = 3
	fc.mu.Unlock()
	if r := search(); r.status != http.StatusOK || !strings.Contains(string(r.body), `"coverage":{"shards":3,"of":4}`) {
		t.Fatalf("partial search: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", ts.url+"/metrics", "", nil); !strings.Contains(string(r.body), "lookalike_cluster_partial_searches_total 1") {
		t.Fatal("no partial-search metric")
	}
	if r := do(t, "GET", ts.url+"/v1/cluster", "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"node":"n1"`) {
		t.Fatalf("GET /v1/cluster: %d %s", r.status, r.body)
	}

	for _, tc := range []struct{ method, path, code string }{
		{"GET", "/v1/collections/default/items", "not_in_cluster_mode"},
		{"POST", "/v1/collections/default/items:batch", "not_in_cluster_mode"},
		{"PATCH", "/v1/collections/default/items/p1", "not_in_cluster_mode"},
		{"GET", "/v1/collections/default/items/p1/thumbnail", "not_in_cluster_mode"},
		{"GET", "/v1/collections/default/items/nope", "item_not_found"},
		{"DELETE", "/v1/collections/default/items/nope", "item_not_found"},
	} {
		r := do(t, tc.method, ts.url+tc.path, "", nil)
		if code := r.errorCode(t); code != tc.code {
			t.Errorf("%s %s: %d %s, want %s", tc.method, tc.path, r.status, code, tc.code)
		}
	}

	fc.mu.Lock()
	fc.down = true
	fc.mu.Unlock()
	if r := add("p2"); r.status != http.StatusServiceUnavailable || r.errorCode(t) != "cluster_unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("add without quorum: %d %s", r.status, r.body)
	}
	if r := search(); r.status != http.StatusServiceUnavailable || r.errorCode(t) != "cluster_unavailable" {
		t.Fatalf("search without shards: %d %s", r.status, r.body)
	}
	fc.mu.Lock()
	fc.down = false
	fc.mu.Unlock()
	if r := do(t, "DELETE", ts.url+"/v1/collections/default/items/p1", "", nil); r.status != http.StatusOK {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if _, ok := fc.items["p1"]; ok {
		t.Fatal("delete not published")
	}
}
