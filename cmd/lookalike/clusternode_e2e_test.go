package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestClusterRoutesAcrossNodes runs three `lookalike serve` processes in cluster mode (4 shards,
// replication factor 2: no node holds every shard) and uses each route cluster mode serves
// through a node other than the one that took the write, with min_seq for read-your-writes:
// items:batch, GET item, PATCH, thumbnail, source, similar, search, DELETE, and a min_seq beyond
// the log (503 not_caught_up).
func TestClusterRoutesAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers")
	}
	lookalikeBinary(t)
	photos := e2ePhotos(t, 12)
	const n = 3
	routes := make([]string, n)
	for i := range routes {
		routes[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	nodes := make([]*e2eServer, n)
	for i := range nodes {
		nodes[i] = startProc(t, t.TempDir(), "LOOKALIKE_CLUSTER_ENABLED=true",
			fmt.Sprintf("LOOKALIKE_CLUSTER_NODE_NAME=n%d", i+1),
			fmt.Sprintf("LOOKALIKE_CLUSTER_CLIENT_ADDR=127.0.0.1:%d", freePort(t)),
			"LOOKALIKE_CLUSTER_CLUSTER_ADDR="+routes[i], "LOOKALIKE_CLUSTER_ROUTES="+strings.Join(routes, ","),
			"LOOKALIKE_CLUSTER_SHARDS=4", "LOOKALIKE_CLUSTER_REPLICATION_FACTOR=2")
	}
	for _, s := range nodes {
		if err := s.waitReady(90 * time.Second); err != nil {
			t.Fatalf("node not ready: %v\n%s", err, s.stderr.String())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The placement over all three nodes is stored (the first node may have placed every shard
	// on itself before the others heard of it).
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		var st struct {
			Assignment map[string]struct {
				Nodes []string `json:"nodes"`
			} `json:"assignment"`
		}
		r := httpDo(ctx, "GET", nodes[0].url+"/v1/cluster", "", nil)
		if r.err == nil && json.Unmarshal(r.body, &st) == nil && len(st.Assignment["default"].Nodes) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no placement over 3 nodes: %s", r.body)
		}
	}

	items := make([]e2eItem, len(photos))
	for i := range items {
		items[i] = e2eItem{id: fmt.Sprintf("c%02d", i), photo: i, meta: map[string]any{"i": float64(i)}}
	}
	res := httpDo(ctx, "POST", nodes[1].url+"/v1/collections/default/items:batch", "application/x-ndjson", ndjsonBatch(items, photos))
	var batch struct {
		Stored  int `json:"stored"`
		Results []struct {
			Seq uint64 `json:"seq"`
		} `json:"results"`
	}
	if res.err != nil || res.status != http.StatusOK || json.Unmarshal(res.body, &batch) != nil || batch.Stored != len(items) {
		t.Fatalf("batch through n2: %d %v %.400s", res.status, res.err, res.body)
	}
	var last uint64
	for _, r := range batch.Results {
		last = max(last, r.Seq)
	}
	get := func(s *e2eServer, id string, minSeq uint64) httpResult {
		return httpDo(ctx, "GET", fmt.Sprintf("%s?min_seq=%d", itemURL(s.url, id), minSeq), "", nil)
	}
	for _, s := range nodes {
		for _, it := range items {
			r := get(s, it.id, last)
			var got struct {
				Metadata map[string]any `json:"metadata"`
			}
			if r.status != http.StatusOK || json.Unmarshal(r.body, &got) != nil || got.Metadata["i"] != it.meta["i"] {
				t.Fatalf("GET %s on %s: %d %s", it.id, s.url, r.status, r.body)
			}
			if r := httpDo(ctx, "GET", itemURL(s.url, it.id)+"/thumbnail", "", nil); r.status != http.StatusOK || r.header.Get("Content-Type") != "image/jpeg" {
				t.Fatalf("thumbnail of %s on %s: %d", it.id, s.url, r.status)
			}
		}
	}
	if r := httpDo(ctx, "GET", itemURL(nodes[0].url, "c03")+"/source", "", nil); r.status != http.StatusOK || r.header.Get("X-Rendition") == "" {
		t.Errorf("source: %d %v", r.status, r.header)
	}

	// PATCH through n3, read back through n1.
	r := httpDo(ctx, "PATCH", itemURL(nodes[2].url, "c04"), "application/merge-patch+json", []byte(`{"metadata":{"color":"red"}}`))
	var patched struct {
		Seq uint64 `json:"seq"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &patched) != nil || patched.Seq <= last {
		t.Fatalf("PATCH through n3: %d %s", r.status, r.body)
	}
	if r := get(nodes[0], "c04", patched.Seq); r.status != http.StatusOK || !strings.Contains(string(r.body), `"color":"red"`) {
		t.Errorf("patched item through n1: %d %s", r.status, r.body)
	}

	// Similar through n2 leaves the item out; a search through n3 finds every item.
	r = httpDo(ctx, "GET", itemURL(nodes[1].url, "c00")+"/similar?k=5", "", nil)
	var sim e2eSearchResponse
	if r.status != http.StatusOK || json.Unmarshal(r.body, &sim) != nil || len(sim.Results) != 5 {
		t.Fatalf("similar: %d %s", r.status, r.body)
	}
	for _, x := range sim.Results {
		if x.ID == "c00" {
			t.Errorf("similar lists the item itself: %s", r.body)
		}
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, _ := w.CreateFormFile("image", "q.jpg")
	fw.Write(photos[7])
	w.WriteField("k", "50")
	w.WriteField("min_seq", fmt.Sprint(patched.Seq))
	w.Close()
	r = httpDo(ctx, "POST", nodes[2].url+"/v1/collections/default/search", w.FormDataContentType(), buf.Bytes())
	var found e2eSearchResponse
	if r.status != http.StatusOK || json.Unmarshal(r.body, &found) != nil || len(found.Results) != len(items) || found.Results[0].ID != "c07" {
		t.Fatalf("search through n3: %d %.400s", r.status, r.body)
	}

	// DELETE through n1, gone through n3; a min_seq beyond the log answers 503 not_caught_up.
	r = httpDo(ctx, "DELETE", itemURL(nodes[0].url, "c05"), "", nil)
	var del struct {
		Seq uint64 `json:"seq"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &del) != nil || del.Seq == 0 {
		t.Fatalf("DELETE through n1: %d %s", r.status, r.body)
	}
	if r := get(nodes[2], "c05", del.Seq); r.status != http.StatusNotFound {
		t.Errorf("deleted item through n3: %d %s", r.status, r.body)
	}
	if r := get(nodes[2], "c06", del.Seq+1000); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), `"not_caught_up"`) {
		t.Errorf("min_seq beyond the log: %d %s", r.status, r.body)
	}
	for path, want := range map[string]string{"/metrics": "lookalike_cluster_stream_pending{collection=\"default\",shard=",
		"/v1/cluster": `"replication_factor":2`} {
		if r := httpDo(ctx, "GET", nodes[1].url+path, "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), want) {
			t.Errorf("GET %s: %d, no %s in\n%.600s", path, r.status, want, r.body)
		}
	}
}
