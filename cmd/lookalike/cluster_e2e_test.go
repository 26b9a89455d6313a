package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lookalike/lookalike/internal/locate"
)

// TestCluster3Nodes runs three real `lookalike serve` processes in cluster mode on loopback:
// items are added through all three, one node is killed with SIGKILL in the middle of the
// ingest, and a search on each survivor finds every item any node acknowledged; so does the killed
// node once restarted on its data. Finally the last node alone refuses writes with 503
// cluster_unavailable and still answers searches.
func TestCluster3Nodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers")
	}
	lookalikeBinary(t)
	uk, err := locate.Dir("ukbench", locate.DatasetDirs())
	if err != nil {
		t.Skip(err)
	}
	const n = 3
	routes := make([]string, n)
	for i := range routes {
		routes[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	nodes := make([]*e2eServer, n)
	envs := make([][]string, n)
	var wg sync.WaitGroup
	for i := range nodes {
		envs[i] = []string{"LOOKALIKE_CLUSTER_ENABLED=true",
			fmt.Sprintf("LOOKALIKE_CLUSTER_NODE_NAME=n%d", i+1),
			fmt.Sprintf("LOOKALIKE_CLUSTER_CLIENT_ADDR=127.0.0.1:%d", freePort(t)),
			"LOOKALIKE_CLUSTER_CLUSTER_ADDR=" + routes[i], "LOOKALIKE_CLUSTER_ROUTES=" + strings.Join(routes, ","),
			"LOOKALIKE_CLUSTER_SHARDS=4",
			// Every node holds every shard: the last step searches the last node alone.
			"LOOKALIKE_CLUSTER_REPLICATION_FACTOR=3"}
		nodes[i] = startProc(t, t.TempDir(), envs[i]...)
	}
	for _, s := range nodes { // the cluster forms only once a quorum is up: wait for all after starting all
		if err := s.waitReady(90 * time.Second); err != nil {
			t.Fatalf("node not ready: %v\n%s", err, s.stderr.String())
		}
	}

	const perNode = 16
	var mu sync.Mutex
	acked := map[string]bool{}
	var killedAcks int
	killAt := make(chan struct{})
	for w, s := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perNode {
				photo := fmt.Sprintf("ukbench%05d.jpg", w*perNode+j)
				id := fmt.Sprintf("w%d-%d", w, j)
				status, body := clusterAdd(t, s.url, id, filepath.Join(uk, photo))
				if status != http.StatusCreated {
					if w == n-1 {
						return // the killed node
					}
					t.Errorf("add %s through n%d: %d %s", id, w+1, status, body)
					continue
				}
				mu.Lock()
				acked[id] = true
				if w == n-1 {
					if killedAcks++; killedAcks == perNode/2 {
						close(killAt)
					}
				}
				mu.Unlock()
			}
		}()
	}
	<-killAt
	if err := nodes[n-1].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-nodes[n-1].exited
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d items acknowledged (%d through the killed node)", len(acked), killedAcks)

	query, err := os.ReadFile(filepath.Join(uk, "ukbench00000.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	check := func(s *e2eServer) {
		var missing []string
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
			found := clusterSearchIDs(t, s.url, query, 1000)
			missing = missing[:0]
			for id := range acked {
				if !found[id] {
					missing = append(missing, id)
				}
			}
			if len(missing) == 0 || time.Now().After(deadline) {
				break
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("search on %s misses %d acknowledged items: %v", s.url, len(missing), missing)
		}
	}
	for _, s := range nodes[:n-1] {
		check(s)
	}
	for path, want := range map[string]string{"/metrics": "lookalike_cluster_replica_applied_seq{collection=\"default\",shard=\"3\"}",
		"/v1/cluster": `"applied_seq":`} {
		resp, err := http.Get(nodes[0].url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, no %s in\n%.600s", path, resp.StatusCode, want, b)
		}
	}
	// The killed node restarts on its data, catches up from the log and finds them too.
	back := startServer(t, nodes[n-1].data, envs[n-1]...)
	check(back)

	// With two of three nodes gone the last one has no quorum: writes are refused with a code
	// (after the write budget), searches still answer from its replicas.
	for _, s := range []*e2eServer{nodes[0], back} {
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.exited
	}
	status, body := clusterAdd(t, nodes[1].url, "late", filepath.Join(uk, "ukbench00001.jpg"))
	if status != http.StatusServiceUnavailable || !strings.Contains(body, `"cluster_unavailable"`) {
		t.Errorf("add without quorum: %d %s", status, body)
	}
	// Right after the kills a shard's request can still go to a dead node's subscription (the
	// answer is then partial, with its coverage), until the survivor's server drops its interest.
	var found map[string]bool
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		if found = clusterSearchIDs(t, nodes[1].url, query, 1000); len(found) >= len(acked) || time.Now().After(deadline) {
			break
		}
	}
	if len(found) < len(acked) {
		t.Errorf("search without quorum found %d of %d items", len(found), len(acked))
	}
}

// clusterAdd posts one photo as item id.
func clusterAdd(t *testing.T, url, id, path string) (int, string) {
	img, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, _ := w.CreateFormFile("image", filepath.Base(path))
	fw.Write(img)
	w.WriteField("id", id)
	w.Close()
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(url+"/v1/collections/default/items", w.FormDataContentType(), &buf)
	if err != nil {
		return 0, err.Error() // a killed node
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// clusterSearchIDs searches by photo with k and returns the ids found.
func clusterSearchIDs(t *testing.T, url string, img []byte, k int) map[string]bool {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, _ := w.CreateFormFile("image", "q.jpg")
	fw.Write(img)
	w.WriteField("k", fmt.Sprint(k))
	w.Close()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Post(url+"/v1/collections/default/search", w.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			ID string `json:"id"`
		} `json:"results"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("search on %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, r := range out.Results {
		found[r.ID] = true
	}
	return found
}
