package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestClusterFigures measures the figures of docs/cluster.md in one run (not part of make test):
//
//	LOOKALIKE_CLUSTER_FIGURES=1 go test -count=1 -run TestClusterFigures -v -timeout 30m ./cmd/lookalike/
//
// With the same client load (6 concurrent writers, one photo per request) it ingests
// LOOKALIKE_CLUSTER_FIGURES_N items (default 3 000) into a single node (cluster off), a one-node
// cluster and a three-node cluster (16 shards, writes spread over the nodes), then times searches
// one at a time at that catalog size (by vector: the scatter-gather alone; by photo: with the
// embedding). On the three-node cluster it then kills the log's leader with SIGKILL in the middle
// of 1 000 more writes (the write stall: the longest gap between acknowledgements) and restarts it
// (the catch-up rate). All processes share this machine's cores: a cluster on one machine measures
// the cost of replication, not the gain of more machines.
func TestClusterFigures(t *testing.T) {
	if os.Getenv("LOOKALIKE_CLUSTER_FIGURES") == "" {
		t.Skip("set LOOKALIKE_CLUSTER_FIGURES=1 to measure docs/cluster.md's figures")
	}
	lookalikeBinary(t)
	n := 3000
	if v := os.Getenv("LOOKALIKE_CLUSTER_FIGURES_N"); v != "" {
		fmt.Sscan(v, &n)
	}
	var rows []string
	measure := func(name string, urls []string) {
		led := newLedger()
		ingest := ingestLoad(t, urls, led, 0, n, 6)
		var id string
		for k := range led.acked {
			id = k
			break
		}
		dims, err := itemDims(urls[0], id)
		if err != nil {
			t.Fatal(err)
		}
		vec := searchLatencies(t, urls, 300, func(int) map[string]any { return map[string]any{"vector": onesVector(dims), "k": 10} })
		img := searchLatencies(t, urls, 150, func(i int) map[string]any {
			return map[string]any{"image": base64.StdEncoding.EncodeToString(clusterPhoto(i * 7 % n)), "k": 10}
		})
		rows = append(rows, fmt.Sprintf("| %s | %d | %.1f | %.0f | %.1f / %.1f | %.1f / %.1f |", name, n, ingest.Seconds(), float64(n)/ingest.Seconds(),
			ms(pct(vec, 50)), ms(pct(vec, 95)), ms(pct(img, 50)), ms(pct(img, 95))))
		t.Logf("%s", rows[len(rows)-1])
	}

	single := startServer(t, t.TempDir())
	measure("single node (cluster off)", []string{single.url})
	single.terminate(30 * time.Second)

	one := startLKCluster(t, [][]string{{"LOOKALIKE_CLUSTER_ENABLED=true", "LOOKALIKE_CLUSTER_NODE_NAME=n1",
		fmt.Sprintf("LOOKALIKE_CLUSTER_CLIENT_ADDR=127.0.0.1:%d", freePort(t))}})
	measure("1-node cluster", []string{one.nodes[0].url})
	one.nodes[0].terminate(30 * time.Second)

	envs := loopbackClusterEnvs(t, 3, 16)
	c := startLKCluster(t, envs)
	var urls []string
	for _, nd := range c.nodes {
		urls = append(urls, nd.url)
	}
	measure("3-node cluster", urls)

	// Leader loss and catch-up on the three-node cluster, 1 000 more items.
	led := newLedger()
	leader, stall := c.killRound(t, led, 1, n, n+1000, c.logLeader)
	dims, err := itemDims(c.nodes[(slices.Index(c.nodes, leader)+1)%3].url, fmt.Sprintf("it%04d", n))
	if err != nil {
		t.Fatal(err)
	}
	rate := c.restartAndCatchUp(t, led, 1, leader, dims)
	t.Logf("figures (%s, %d cores shared by every process):\n| setup | items | ingest s | items/s | vector search p50 / p95 ms | photo search p50 / p95 ms |\n|---|---|---|---|---|---|\n%s\nwrite stall on leader loss (SIGKILL of %s): %.2f s; catch-up of the restarted leader: %.0f items/s",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), strings.Join(rows, "\n"), leader.name, stall.Seconds(), rate)
}

// ingestLoad adds items [from, to) through urls (item i through urls[i mod len]) with conc writers
// at once and returns how long it took; every add must be acknowledged.
func ingestLoad(t *testing.T, urls []string, led *ledger, from, to, conc int) time.Duration {
	t.Helper()
	items := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range items {
				id, group := fmt.Sprintf("it%04d", i), i/clusterGroupSize
				status, body, err := postClusterItem(context.Background(), urls[i%len(urls)], id, group, clusterPhoto(i))
				if status != http.StatusCreated {
					t.Errorf("add %s: %d %s %v", id, status, body, err)
					continue
				}
				led.ack(id, group)
			}
		}()
	}
	for i := from; i < to; i++ {
		items <- i
	}
	close(items)
	wg.Wait()
	return time.Since(start)
}

// searchLatencies times n searches q(i), one at a time, through urls in turn.
func searchLatencies(t *testing.T, urls []string, n int, q func(i int) map[string]any) []time.Duration {
	t.Helper()
	out := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		res := clusterSearch(context.Background(), urls[i%len(urls)], q(i))
		if res.err != nil || res.status != http.StatusOK || len(res.ids) == 0 {
			t.Fatalf("search: %d %v %.300s", res.status, res.err, res.body)
		}
		out = append(out, time.Since(start))
	}
	slices.Sort(out)
	return out
}

// pct is the p-th percentile of sorted durations.
func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}
