package main

// Helpers of the multi-process cluster tests (cluster_*_test.go): a cluster of real `lookalike
// serve` processes on loopback, driven through the REST API only. The tests assume nothing about
// which node holds which shard: any node answers any route.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// clusterNode is one serve process of a test cluster and what restarts it on the same data.
type clusterNode struct {
	name string
	env  []string
	*e2eServer
}

// lkCluster is a test cluster: nodes n1..nN, each with its own data directory.
type lkCluster struct {
	t     *testing.T
	nodes []*clusterNode
}

// clusterEnv is node i's environment (0-based) in a cluster whose route listeners are routes:
// every node lists every route address (its own included); extra is appended.
func clusterEnv(t *testing.T, i int, routes []string, shards int, extra ...string) []string {
	env := []string{"LOOKALIKE_CLUSTER_ENABLED=true",
		fmt.Sprintf("LOOKALIKE_CLUSTER_NODE_NAME=n%d", i+1),
		fmt.Sprintf("LOOKALIKE_CLUSTER_CLIENT_ADDR=127.0.0.1:%d", freePort(t)),
		"LOOKALIKE_CLUSTER_ROUTES=" + strings.Join(routes, ","),
		fmt.Sprintf("LOOKALIKE_CLUSTER_SHARDS=%d", shards)}
	return append(env, extra...)
}

// loopbackClusterEnvs is the environment of n nodes whose route listeners take free loopback
// ports, each listing all of them.
func loopbackClusterEnvs(t *testing.T, n, shards int) [][]string {
	routes := make([]string, n)
	for i := range routes {
		routes[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	envs := make([][]string, n)
	for i := range envs {
		envs[i] = clusterEnv(t, i, routes, shards, "LOOKALIKE_CLUSTER_CLUSTER_ADDR="+routes[i])
	}
	return envs
}

// startLKCluster starts one serve process per env and waits until all are ready (the cluster forms
// only once a quorum is up, so all are started before any is waited for).
func startLKCluster(t *testing.T, envs [][]string) *lkCluster {
	t.Helper()
	c := &lkCluster{t: t}
	for i, env := range envs {
		c.nodes = append(c.nodes, &clusterNode{name: fmt.Sprintf("n%d", i+1), env: env, e2eServer: startProc(t, t.TempDir(), env...)})
	}
	for _, n := range c.nodes {
		if err := n.waitReady(120 * time.Second); err != nil {
			t.Fatalf("%s not ready: %v\n%s", n.name, err, n.stderr.String())
		}
	}
	return c
}

// node returns the node called name (n1, n2, ...), or nil.
func (c *lkCluster) node(name string) *clusterNode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// restart starts node n again on its data (a new HTTP port) without waiting for it.
func (c *lkCluster) restart(n *clusterNode) {
	n.e2eServer = startProc(c.t, n.data, n.env...)
}

// clusterPhoto is item i's picture: a small JPEG of random colored blocks, distinct per i and
// cheap to decode (the embedding costs the same at any input size).
func clusterPhoto(i int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 0x1ce))
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for by := 0; by < 8; by++ {
		for bx := 0; bx < 8; bx++ {
			c := color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255}
			for y := by * 8; y < by*8+8; y++ {
				for x := bx * 8; x < bx*8+8; x++ {
					img.SetRGBA(x, y, c)
				}
			}
		}
	}
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}) // a bytes.Buffer does not fail
	return buf.Bytes()
}

// clusterClient has a per-request limit above the write budget (15 s) and the server's write
// timeout (30 s), so a refused write is seen as the server's answer.
var clusterClient = &http.Client{Timeout: 45 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

// postClusterItem adds item id (its photo, metadata {"g": group}) through base. err is set when
// no answer came (a killed node, a cut connection).
func postClusterItem(ctx context.Context, base, id string, group int, photo []byte) (int, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, _ := w.CreateFormFile("image", id+".jpg")
	fw.Write(photo)
	w.WriteField("id", id)
	w.WriteField("metadata", fmt.Sprintf(`{"g":%d}`, group))
	w.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/collections/default/items", &buf)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := clusterClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// clusterSearchResult is what a cluster search answered.
type clusterSearchResult struct {
	status   int
	body     string
	ids      map[string]bool
	coverage *clusterCoverageJSON
	err      error
}

type clusterCoverageJSON struct {
	Shards int `json:"shards"`
	Of     int `json:"of"`
}

// searchGroup asks base for the top k of the items with metadata g = group, by a fixed vector of
// dims dimensions: under a filter a shard of at most a few thousand items is searched exactly, so
// k at least the group's size returns the whole group.
func searchGroup(ctx context.Context, base string, dims, group, k int) clusterSearchResult {
	return clusterSearch(ctx, base, map[string]any{"vector": onesVector(dims), "k": k, "filter": fmt.Sprintf("g = %d", group)})
}

// onesVector is a query vector of dims ones.
func onesVector(dims int) []float32 {
	vec := make([]float32, dims)
	for i := range vec {
		vec[i] = 1
	}
	return vec
}

// clusterSearch posts the JSON search q to base's default collection.
func clusterSearch(ctx context.Context, base string, q map[string]any) clusterSearchResult {
	body, _ := json.Marshal(q)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/collections/default/search", bytes.NewReader(body))
	if err != nil {
		return clusterSearchResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := clusterClient.Do(req)
	if err != nil {
		return clusterSearchResult{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := clusterSearchResult{status: resp.StatusCode, body: string(b), ids: map[string]bool{}}
	var sr struct {
		Results []struct {
			ID string `json:"id"`
		} `json:"results"`
		Coverage *clusterCoverageJSON `json:"coverage"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &sr); err != nil {
			out.err = err
		}
		for _, r := range sr.Results {
			out.ids[r.ID] = true
		}
		out.coverage = sr.Coverage
	}
	return out
}

// clusterStatusBody is the part of GET /v1/cluster the tests read.
type clusterStatusBody struct {
	Node string `json:"node"`
	Log  struct {
		Leader  string `json:"leader"`
		LastSeq uint64 `json:"last_seq"`
	} `json:"log"`
	Replicas []struct {
		Shard   int    `json:"shard"`
		Applied uint64 `json:"applied_seq"`
		Lag     uint64 `json:"lag"`
		Serving bool   `json:"serving"`
	} `json:"replicas"`
}

// clusterStatus reads GET /v1/cluster of base.
func clusterStatus(base string) (clusterStatusBody, error) {
	var st clusterStatusBody
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/v1/cluster")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return st, fmt.Errorf("GET /v1/cluster: %d %s", resp.StatusCode, b)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// behind is how many log messages lie after this node's least advanced replica (the work left to
// catch up when the shards' messages interleave, as with random ids; 0 without a leader, whose
// view of the log is the only reliable one); caughtUp says whether every replica serves (a replica
// joins its shard's query group once nothing is pending for it) while the log has a leader.
func (st clusterStatusBody) behind() (behind uint64, caughtUp bool) {
	caughtUp = st.Log.Leader != "" && len(st.Replicas) > 0
	least := st.Log.LastSeq
	for _, r := range st.Replicas {
		least = min(least, r.Applied)
		caughtUp = caughtUp && r.Serving
	}
	if st.Log.Leader == "" {
		return 0, caughtUp
	}
	return st.Log.LastSeq - least, caughtUp
}

// itemDims reads the dimensions of item id through base.
func itemDims(base, id string) (int, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/v1/collections/default/items/" + id)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var it struct {
		Dims int `json:"dims"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&it); err != nil || it.Dims == 0 {
		return 0, fmt.Errorf("item %s through %s: status %d, %v", id, base, resp.StatusCode, err)
	}
	return it.Dims, nil
}

// ledger tracks every write of a test: acknowledged (201: must be found everywhere, for ever) or
// maybe (no answer or a 5xx: it may or may not have landed), and when each acknowledgement came.
type ledger struct {
	mu    sync.Mutex
	acked map[string]int // id → group
	maybe map[string]int
	times []time.Time
}

func newLedger() *ledger { return &ledger{acked: map[string]int{}, maybe: map[string]int{}} }

func (l *ledger) ack(id string, group int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked[id] = group
	delete(l.maybe, id)
	l.times = append(l.times, time.Now())
}

func (l *ledger) unsure(id string, group int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.acked[id]; !ok {
		l.maybe[id] = group
	}
}

func (l *ledger) counts() (acked, maybe int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked), len(l.maybe)
}

// longestGap is the longest time between two consecutive acknowledgements after since.
func (l *ledger) longestGap(since time.Time) time.Duration {
	l.mu.Lock()
	ts := append([]time.Time(nil), l.times...)
	l.mu.Unlock()
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	var gap time.Duration
	for i := 1; i < len(ts); i++ {
		if ts[i].After(since) {
			gap = max(gap, ts[i].Sub(ts[i-1]))
		}
	}
	return gap
}

// missing returns the acknowledged items a search on base does not find (group by group, k
// 1000), waiting up to wait for the node to converge. It fails the test on a search error, and
// on an item found that was neither acknowledged nor maybe written.
func (l *ledger) missing(t *testing.T, base string, dims int, wait time.Duration) []string {
	t.Helper()
	l.mu.Lock()
	groups := map[int][]string{}
	for id, g := range l.acked {
		groups[g] = append(groups[g], id)
	}
	l.mu.Unlock()
	var miss []string
	for deadline := time.Now().Add(wait); ; time.Sleep(500 * time.Millisecond) {
		miss = miss[:0]
		for g, ids := range groups {
			res := searchGroup(context.Background(), base, dims, g, 1000)
			if res.err != nil || res.status != http.StatusOK {
				if time.Now().After(deadline) {
					t.Errorf("search of group %d on %s: %d %v %.300s", g, base, res.status, res.err, res.body)
					return nil
				}
				miss = append(miss, "search-failed")
				break
			}
			for _, id := range ids {
				if !res.ids[id] {
					miss = append(miss, id)
				}
			}
			l.mu.Lock()
			for id := range res.ids {
				if _, acked := l.acked[id]; !acked {
					if _, maybe := l.maybe[id]; !maybe {
						t.Errorf("search on %s finds %s, which was never written", base, id)
					}
				}
			}
			l.mu.Unlock()
		}
		if len(miss) == 0 || time.Now().After(deadline) {
			sort.Strings(miss)
			return miss
		}
	}
}
