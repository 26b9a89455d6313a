package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
)

// clusterPage is the part of a search answer (or of one batch answer) TestClusterQueries reads.
type clusterPage struct {
	Status  int `json:"status"`
	Results []struct {
		ID string `json:"id"`
	} `json:"results"`
	Next string `json:"next_cursor"`
}

func (p clusterPage) ids() []string {
	out := []string{}
	for _, r := range p.Results {
		out = append(out, r.ID)
	}
	return out
}

// TestClusterQueries runs three real serve processes (4 shards): search cursors, exclude_ids,
// searches by item id, recommend and the search and similar batches, each through another node,
// agree with one ranking of the whole collection, over the real scatter-gather.
func TestClusterQueries(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers")
	}
	lookalikeBinary(t)
	c := startLKCluster(t, loopbackClusterEnvs(t, 3, 4))
	const items = 12
	var last uint64
	for i := range items {
		id := fmt.Sprintf("it%02d", i)
		status, body, err := postClusterItem(t.Context(), c.nodes[i%3].url, id, i%2, clusterPhoto(i))
		var ack struct{ Seq uint64 }
		if err != nil || status != http.StatusCreated || json.Unmarshal([]byte(body), &ack) != nil {
			t.Fatalf("add %s: %d %s %v", id, status, body, err)
		}
		last = max(last, ack.Seq)
	}
	n1, n2, n3 := c.nodes[0].url, c.nodes[1].url, c.nodes[2].url
	minSeq := fmt.Sprintf("?min_seq=%d", last)
	var item struct{ Vector []float32 }
	if status, body := getJSON(t, n1+"/v1/collections/default/items/it00"+minSeq+"&with_vector=true", &item); status != http.StatusOK {
		t.Fatalf("get it00: %d %s", status, body)
	}
	post := func(base, path string, body map[string]any, out any) {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, err := clusterClient.Post(base+"/v1/collections/default/"+path+minSeq, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(rb, out) != nil {
			t.Fatalf("POST %s %s: %d %s", path, b, resp.StatusCode, rb)
		}
	}
	search := func(base string, q map[string]any) clusterPage {
		t.Helper()
		var p clusterPage
		post(base, "search", q, &p)
		return p
	}

	full := search(n1, map[string]any{"vector": item.Vector, "k": items})
	if ids := full.ids(); len(ids) != items || ids[0] != "it00" || full.Next != "" {
		t.Fatalf("the whole ranking: %v, next %q", ids, full.Next)
	}
	want := full.ids()
	var paged []string
	cursor := ""
	for page := 0; page < 3; page++ {
		p := search(n2, map[string]any{"vector": item.Vector, "k": 5, "cursor": cursor})
		paged = append(paged, p.ids()...)
		if cursor = p.Next; (cursor == "") != (page == 2) {
			t.Fatalf("page %d: next_cursor %q", page, cursor)
		}
	}
	if !slices.Equal(paged, want) {
		t.Errorf("pages of 5: %v, want %v", paged, want)
	}
	if got := search(n3, map[string]any{"vector": item.Vector, "k": 3, "exclude_ids": want[:2]}).ids(); !slices.Equal(got, want[2:5]) {
		t.Errorf("exclude_ids %v: %v, want %v", want[:2], got, want[2:5])
	}
	if got := search(n1, map[string]any{"id": "it00", "k": items}).ids(); !slices.Equal(got, want[1:]) {
		t.Errorf("search by id: %v, want %v", got, want[1:])
	}
	var rec clusterPage
	if post(n2, "recommend", map[string]any{"positive": []string{"it00"}, "k": 4}, &rec); !slices.Equal(rec.ids(), want[1:5]) {
		t.Errorf("recommend [it00]: %v, want %v", rec.ids(), want[1:5])
	}
	var batch struct{ Results []clusterPage }
	post(n3, "search:batch", map[string]any{"searches": []any{map[string]any{"vector": item.Vector, "k": 2}, map[string]any{"id": "nope"}}}, &batch)
	if len(batch.Results) != 2 || batch.Results[0].Status != 200 || !slices.Equal(batch.Results[0].ids(), want[:2]) || batch.Results[1].Status != 404 {
		t.Errorf("search:batch: %+v", batch.Results)
	}
	post(n1, "similar:batch", map[string]any{"ids": []string{"it00"}, "k": 3}, &batch)
	if len(batch.Results) != 1 || !slices.Equal(batch.Results[0].ids(), want[1:4]) {
		t.Errorf("similar:batch: %+v, want %v", batch.Results, want[1:4])
	}
}
