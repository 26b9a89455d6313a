package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestClusterListing runs three real serve processes (4 shards, 2 replicas each): items added
// through every node are listed page by page, counted, filtered and described by GET
// /v1/collections on each node, whichever shards it holds; after kill -9 of one node the two
// others still list and count every item (each shard has a replica left).
func TestClusterListing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers")
	}
	lookalikeBinary(t)
	c := startLKCluster(t, loopbackClusterEnvs(t, 3, 4))
	const items = 24
	var want []string
	var last uint64 // the last write's seq: reads carry it as min_seq (another replica may lag)
	for i := range items {
		id := fmt.Sprintf("it%02d", i)
		n := c.nodes[i%len(c.nodes)]
		status, body, err := postClusterItem(context.Background(), n.url, id, i%2, clusterPhoto(i))
		var ack struct{ Seq uint64 }
		if err != nil || status != http.StatusCreated || json.Unmarshal([]byte(body), &ack) != nil {
			t.Fatalf("add %s through %s: %d %s %v", id, n.name, status, body, err)
		}
		want, last = append(want, id), max(last, ack.Seq)
	}
	minSeq := fmt.Sprintf("min_seq=%d", last)
	check := func(n *clusterNode) {
		t.Helper()
		var got []string
		cursor := ""
		for pages := 0; pages <= items; pages++ {
			var page struct {
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
				Next     string               `json:"next_cursor"`
				Coverage *clusterCoverageJSON `json:"coverage"`
			}
			if status, body := getJSON(t, n.url+"/v1/collections/default/items?limit=5&"+minSeq+"&cursor="+url.QueryEscape(cursor), &page); status != http.StatusOK || page.Coverage != nil || len(page.Items) > 5 {
				t.Errorf("%s: page after %q: %d %s", n.name, cursor, status, body)
				return
			}
			for _, it := range page.Items {
				got = append(got, it.ID)
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s lists %v, want %v", n.name, got, want)
		}
		for q, count := range map[string]int{"?" + minSeq: items, "?filter=g%20%3D%201&" + minSeq: items / 2} {
			var out struct{ Count int }
			if status, body := getJSON(t, n.url+"/v1/collections/default/items:count"+q, &out); status != http.StatusOK || out.Count != count {
				t.Errorf("%s: count%s: %d %s, want %d", n.name, q, status, body, count)
			}
		}
		var cols struct {
			Collections []struct {
				Name  string
				Count int
				Dims  int
			}
		}
		// Without min_seq a count may come from a replica still applying the last writes: wait.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			status, body := getJSON(t, n.url+"/v1/collections", &cols)
			ok := status == http.StatusOK && len(cols.Collections) == 1 && cols.Collections[0].Count == items && cols.Collections[0].Dims > 0
			if ok || time.Now().After(deadline) {
				if !ok {
					t.Errorf("%s: collections: %d %s", n.name, status, body)
				}
				break
			}
		}
	}
	for _, n := range c.nodes {
		check(n)
	}
	if t.Failed() {
		return
	}
	// kill -9 of n3: the survivors answer for every shard once NATS has noticed (a dead node's
	// queue-group interest goes within seconds); until then a page may report partial coverage.
	victim := c.node("n3")
	victim.cmd.Process.Signal(syscall.SIGKILL)
	<-victim.exited
	for _, n := range c.nodes[:2] {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			var out struct {
				Count    int
				Coverage *clusterCoverageJSON
			}
			status, _ := getJSON(t, n.url+"/v1/collections/default/items:count?"+minSeq, &out)
			if status == http.StatusOK && out.Coverage == nil && out.Count == items || time.Now().After(deadline) {
				break
			}
		}
		check(n)
	}
}

// getJSON GETs u and decodes a 200 answer into out; it returns the status and body.
func getJSON(t *testing.T, u string, out any) (int, string) {
	t.Helper()
	resp, err := clusterClient.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %v in %s", u, err, b)
		}
	}
	return resp.StatusCode, string(b)
}
