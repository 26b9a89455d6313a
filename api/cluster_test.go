package api

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/edit"
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
	lastMinSeq uint64
	notCaught  bool // reads with a min_seq above seq: ErrClusterNotCaughtUp
	lastList   ClusterList
	lastQuery  ClusterQuery
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

func (f *fakeCluster) Patch(_ context.Context, _, id string, patch json.RawMessage, ifVersion uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return 0, ErrClusterUnavailable
	}
	f.seq++
	it, ok := f.items[id]
	if ok && (ifVersion == 0 || ifVersion == it.Version) {
		meta, err := edit.PatchMetadata(it.Metadata, patch, edit.Options{})
		if err != nil {
			return 0, err
		}
		it.Metadata, it.Version = meta, f.seq
		f.items[id] = it
	}
	return f.seq, nil
}

func (f *fakeCluster) Delete(_ context.Context, _, id string, _ uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return 0, ErrClusterUnavailable
	}
	f.seq++
	delete(f.items, id)
	return f.seq, nil
}

func (f *fakeCluster) Get(_ context.Context, _, id string, o ClusterRead) (index.Item, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastMinSeq = o.MinSeq
	if o.MinSeq > f.seq && f.notCaught {
		return index.Item{}, ErrClusterNotCaughtUp
	}
	it, ok := f.items[id]
	if ok && !o.Thumbnail {
		it.Thumbnail = nil
	}
	if ok && !o.Source {
		it.Source = nil
	}
	if !ok {
		return index.Item{}, index.ErrNotFound
	}
	return it, nil
}

// Search ranks the items by cosine to q.Vector (ties by id), leaving out q.ExcludeIDs, and
// returns the top q.K, as Node.Search merges the shards' (the filter is recorded, not applied).
func (f *fakeCluster) Search(_ context.Context, _ string, q ClusterQuery) ([]index.Result, int, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastK, f.lastFilter, f.lastMinSeq, f.lastQuery = q.K, q.Filter, q.MinSeq, q
	if f.down {
		return nil, 0, 0, ErrClusterUnavailable
	}
	if q.MinSeq > f.seq && f.notCaught {
		return nil, 0, 0, ErrClusterNotCaughtUp
	}
	var out []index.Result
	for id, it := range f.items {
		if !slices.Contains(q.ExcludeIDs, id) {
			out = append(out, index.Result{ID: id, Score: cosine(q.Vector, it.Vector), Metadata: it.Metadata})
		}
	}
	slices.SortFunc(out, func(a, b index.Result) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out[:min(len(out), q.K)], f.shards, f.of, nil
}

func cosine(a, b []float32) float32 {
	var ab, aa, bb float64
	for i := range min(len(a), len(b)) {
		ab, aa, bb = ab+float64(a[i])*float64(b[i]), aa+float64(a[i])*float64(a[i]), bb+float64(b[i])*float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return float32(ab / math.Sqrt(aa*bb))
}

// List pages through the items in id order (the filter is recorded, not applied); a collection
// other than default is not served.
func (f *fakeCluster) List(_ context.Context, collection string, q ClusterList) (ClusterPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastList = q
	switch {
	case collection != "default":
		return ClusterPage{}, index.ErrNotFound
	case f.down:
		return ClusterPage{}, ErrClusterUnavailable
	}
	page := ClusterPage{Count: len(f.items), Shards: f.shards, Of: f.of}
	if q.Count {
		return page, nil
	}
	ids := slices.Sorted(maps.Keys(f.items))
	for _, id := range ids {
		if id <= q.Cursor && q.Cursor != "" {
			continue
		}
		if len(page.Items) == q.Limit {
			page.Next = page.Items[len(page.Items)-1].ID
			break
		}
		page.Items = append(page.Items, f.items[id])
	}
	return page, nil
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
	if it := fc.items["p1"]; len(it.Vector) == 0 || len(it.Thumbnail) == 0 || len(it.Source) == 0 || it.ContentHash == "" || string(it.Metadata) != `{"brand":"x"}` {
		t.Fatalf("published item incomplete: dims %d thumb %d source %d hash %q meta %s", len(it.Vector), len(it.Thumbnail), len(it.Source), it.ContentHash, it.Metadata)
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
	if fc.lastK != 4 || fc.lastFilter != `brand = "x"` {
		t.Fatalf("search passed k %d filter %q, want 4 (one more: is there a next page?) and the filter", fc.lastK, fc.lastFilter)
	}
	// The UI's form: a filter as a JSON object; the answer names the kept photo, and a search
	// by that photo_id (and GET /v1/photos/{photo}) find it on this node.
	body, ct := multipartBody(t, part{"image", "q.jpg", img}, part{field: "filter", data: []byte(`{"brand":["x","y"]}`)})
	var sr struct {
		PhotoID string `json:"photo_id"`
	}
	r := do(t, "POST", ts.url+"/v1/collections/default/search", ct, body)
	if r.json(t, &sr); r.status != http.StatusOK || !strings.Contains(fc.lastFilter, `"y"`) || sr.PhotoID == "" {
		t.Fatalf("search with a JSON filter: %d %s (passed %q)", r.status, r.body, fc.lastFilter)
	}
	body, ct = multipartBody(t, part{field: "photo_id", data: []byte(sr.PhotoID)})
	if r := do(t, "POST", ts.url+"/v1/collections/default/search", ct, body); r.status != http.StatusOK || !strings.Contains(string(r.body), `"p1"`) {
		t.Fatalf("search by photo_id: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", ts.url+"/v1/photos/"+sr.PhotoID, "", nil); r.status != http.StatusOK || len(r.body) != len(img) {
		t.Fatalf("kept photo: %d, %d bytes", r.status, len(r.body))
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
		{"GET", "/v1/collections/default/duplicates", "not_in_cluster_mode"},
		{"POST", "/v1/collections/default/rebuild", "not_in_cluster_mode"},
		{"GET", "/v1/collections/default/items/nope/thumbnail", "item_not_found"},
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

// TestClusterModeMoreRoutes: metadata patches, thumbnails and sources, similar items, and
// min_seq (read-your-writes) on reads and searches, on the fake cluster.
func TestClusterModeMoreRoutes(t *testing.T) {
	ts := newTestServer(t, nil)
	fc := &fakeCluster{items: map[string]index.Item{}, shards: 4, of: 4}
	ts.SetCluster(fc)
	img := photo(t, "ukbench00000.jpg")
	for _, id := range []string{"p1", "p2"} {
		body, ct := multipartBody(t, part{"image", "a.jpg", img}, part{field: "id", data: []byte(id)}, part{field: "metadata", data: []byte(`{"brand":"x","size":1}`)})
		if r := do(t, "POST", ts.url+"/v1/collections/default/items", ct, body); r.status != http.StatusCreated {
			t.Fatalf("add %s: %d %s", id, r.status, r.body)
		}
	}
	item := ts.url + "/v1/collections/default/items/"
	patch := func(id, body string, hdr ...string) response {
		return do(t, "PATCH", item+id, "application/merge-patch+json", strings.NewReader(body), hdr...)
	}
	r := patch("p1", `{"metadata":{"size":null,"color":"red"}}`)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"outcome":"updated"`) || !strings.Contains(string(r.body), `"seq":3`) ||
		!strings.Contains(string(r.body), `"color":"red"`) || strings.Contains(string(r.body), `"size"`) {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	if fc.lastMinSeq != 3 {
		t.Errorf("the patched item was read back with min_seq %d, want 3", fc.lastMinSeq)
	}
	if r := patch("p1", `{"metadata":{"color":"red"}}`); r.status != http.StatusOK || !strings.Contains(string(r.body), `"outcome":"unchanged"`) || fc.seq != 3 {
		t.Errorf("no-op patch: %d %s (seq %d)", r.status, r.body, fc.seq)
	}
	for _, tc := range []struct {
		id, body string
		hdr      []string
		status   int
		code     string
	}{
		{"p1", `{"metadata":{"a":1},"if_version":1}`, nil, http.StatusConflict, "version_conflict"},
		{"p1", `{"metadata":{"a":1}}`, []string{"If-Match", `"1"`}, http.StatusConflict, "version_conflict"},
		{"nope", `{"metadata":{"a":1}}`, nil, http.StatusNotFound, "item_not_found"},
		{"p1", `{"vector":[1]}`, nil, http.StatusBadRequest, "read_only_field"},
		{"p1", `[1]`, nil, http.StatusBadRequest, "invalid_patch"},
	} {
		r := patch(tc.id, tc.body, tc.hdr...)
		if r.status != tc.status || r.errorCode(t) != tc.code {
			t.Errorf("patch %s %s: %d %s, want %d %s", tc.id, tc.body, r.status, r.body, tc.status, tc.code)
		}
	}
	if r := patch("p2", `{"metadata":{"a":1},"if_version":2}`); r.status != http.StatusOK {
		t.Errorf("patch with a matching if_version: %d %s", r.status, r.body)
	}

	thumb := do(t, "GET", item+"p1/thumbnail", "", nil)
	if thumb.status != http.StatusOK || thumb.header.Get("Content-Type") != "image/jpeg" || len(thumb.body) < 100 {
		t.Fatalf("thumbnail: %d %d bytes", thumb.status, len(thumb.body))
	}
	// The add published a source rendition (limits.source_size), as a single node stores one.
	fc.mu.Lock()
	it := fc.items["p1"]
	fc.mu.Unlock()
	if r := do(t, "GET", item+"p1/source", "", nil); r.status != http.StatusOK || r.header.Get("X-Rendition") != "source" ||
		len(it.Source) <= len(thumb.body) || string(r.body) != string(it.Source) {
		t.Errorf("source: %d %s, %d bytes (thumbnail %d)", r.status, r.header.Get("X-Rendition"), len(r.body), len(thumb.body))
	}
	fc.mu.Lock()
	it.Source = nil // an item published without one (limits.source_size 0, or an older node)
	fc.items["p1"] = it
	fc.mu.Unlock()
	if r := do(t, "GET", item+"p1/source", "", nil); r.status != http.StatusOK || r.header.Get("X-Rendition") != "thumbnail" || string(r.body) != string(thumb.body) {
		t.Errorf("source without a source rendition: %d %s", r.status, r.header.Get("X-Rendition"))
	}

	r = do(t, "GET", item+"p1/similar?k=5&filter=brand%20%3D%20%27x%27", "", nil)
	if r.status != http.StatusOK || strings.Contains(string(r.body), `"id":"p1"`) || !strings.Contains(string(r.body), `"id":"p2"`) {
		t.Fatalf("similar: %d %s", r.status, r.body)
	}
	if fc.lastK != 6 || fc.lastFilter != `brand = "x"` {
		t.Errorf("similar asked k %d filter %q, want 6 (one more: is there a next page?) and the filter", fc.lastK, fc.lastFilter)
	}
	if r := do(t, "GET", item+"nope/similar", "", nil); r.status != http.StatusNotFound {
		t.Errorf("similar of a missing item: %d %s", r.status, r.body)
	}

	// min_seq: passed through from the query string and the JSON body; refused when malformed;
	// 503 not_caught_up when the replicas do not reach it in time.
	vec, _ := json.Marshal(fc.items["p1"].Vector)
	if r := do(t, "GET", item+"p1?min_seq=4", "", nil); r.status != http.StatusOK || fc.lastMinSeq != 4 {
		t.Errorf("get with min_seq: %d, passed %d", r.status, fc.lastMinSeq)
	}
	if r := do(t, "POST", ts.url+"/v1/collections/default/search", "application/json", strings.NewReader(`{"vector":`+string(vec)+`,"k":2,"min_seq":4}`)); r.status != http.StatusOK || fc.lastMinSeq != 4 {
		t.Errorf("search with min_seq: %d %s, passed %d", r.status, r.body, fc.lastMinSeq)
	}
	if r := do(t, "GET", item+"p1?min_seq=x", "", nil); r.status != http.StatusBadRequest || r.errorCode(t) != "invalid_query" {
		t.Errorf("get with a bad min_seq: %d %s", r.status, r.body)
	}
	fc.mu.Lock()
	fc.notCaught = true
	fc.mu.Unlock()
	for _, r := range []response{
		do(t, "GET", item+"p1?min_seq=99", "", nil),
		do(t, "POST", ts.url+"/v1/collections/default/search?min_seq=99", "application/json", strings.NewReader(`{"vector":`+string(vec)+`,"k":2}`)),
	} {
		if r.status != http.StatusServiceUnavailable || r.errorCode(t) != "not_caught_up" || r.header.Get("Retry-After") == "" {
			t.Errorf("read beyond the replicas: %d %s", r.status, r.body)
		}
	}
}

// TestClusterModeBatch: items:batch publishes each item (multipart), one bad item fails alone.
func TestClusterModeBatch(t *testing.T) {
	ts := newTestServer(t, nil)
	fc := &fakeCluster{items: map[string]index.Item{}, shards: 4, of: 4}
	ts.SetCluster(fc)
	img := photo(t, "ukbench00000.jpg")
	body, ct := multipartBody(t, part{"image", "a.jpg", img}, part{"image", "b.jpg", []byte("not a photo")}, part{"image", "c.jpg", photo(t, "ukbench00001.jpg")},
		part{field: "id", data: []byte("b1")}, part{field: "id", data: []byte("b2")}, part{field: "id", data: []byte("b3")},
		part{field: "metadata", data: []byte(`{"n":1}`)}, part{field: "metadata", data: []byte(`{}`)}, part{field: "metadata", data: []byte(`{"n":3}`)})
	r := do(t, "POST", ts.url+"/v1/collections/default/items:batch", ct, body)
	var out struct {
		Results []struct {
			ID     string `json:"id"`
			Status int    `json:"status"`
			Seq    uint64 `json:"seq"`
			Error  *struct {
				Code string `json:"code"`
			} `json:"error"`
		} `json:"results"`
		Stored, Failed int
	}
	r.json(t, &out)
	if r.status != http.StatusOK || out.Stored != 2 || out.Failed != 1 || len(out.Results) != 3 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	if l := out.Results[0]; l.ID != "b1" || l.Status != http.StatusCreated || l.Seq != 1 {
		t.Errorf("line 1: %+v", l)
	}
	if l := out.Results[1]; l.Error == nil || l.Status < 400 {
		t.Errorf("line 2 (not a photo): %+v", l)
	}
	if l := out.Results[2]; l.Status != http.StatusCreated || l.Seq != 2 || string(fc.items["b3"].Metadata) != `{"n":3}` || len(fc.items["b3"].Thumbnail) == 0 {
		t.Errorf("line 3: %+v", l)
	}
	fc.mu.Lock()
	fc.down = true
	fc.mu.Unlock()
	body, ct = multipartBody(t, part{"image", "a.jpg", img}, part{field: "id", data: []byte("b4")})
	r = do(t, "POST", ts.url+"/v1/collections/default/items:batch", ct, body)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"cluster_unavailable"`) || !strings.Contains(string(r.body), `"failed":1`) {
		t.Errorf("batch without quorum: %d %s", r.status, r.body)
	}
}
