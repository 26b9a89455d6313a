package ui_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lookalike/lookalike/ui"
)

// clusterStatusJSON is a GET /v1/cluster body as cmd/lookalike's clusterBackend writes it: three
// log servers (n2 leads, n3 lags), this node's four shard replicas (one catching up).
const clusterStatusJSON = `{"node":"n1","shards":4,
 "log":{"leader":"n2","first_seq":1,"last_seq":3120,"messages":3120,"peers":[
   {"name":"n1","current":true,"offline":false,"lag":0},
   {"name":"n3","current":false,"offline":false,"lag":412}]},
 "replicas":[
   {"collection":"default","shard":0,"node":"n1","applied_seq":3118,"lag":2,"serving":true},
   {"collection":"default","shard":1,"node":"n1","applied_seq":3120,"lag":0,"serving":true},
   {"collection":"default","shard":2,"node":"n1","applied_seq":2700,"lag":420,"serving":false},
   {"collection":"default","shard":3,"node":"n1","applied_seq":3119,"lag":1,"serving":true}]}`

// TestClusterStatusPage checks the status page's cluster section on a fake server: with GET
// /v1/cluster answering (and /v1/stats refused, as cluster mode did before it served it) it shows
// the node, the log's leader and servers with their state and lag, and every replica with its
// applied sequence, lag and whether it serves; on a single node (404 not_clustered) the section
// stays hidden. The real single node's case is in TestStatusPage, a real cluster node's in
// TestClusterModePages.
func TestClusterStatusPage(t *testing.T) {
	var clustered atomic.Bool
	clustered.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/cluster", func(w http.ResponseWriter, _ *http.Request) {
		if !clustered.Load() {
			writeErr(w, 404, "not_clustered", "this server runs as a single node (cluster.enabled is false)", nil)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(clusterStatusJSON))
	})
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, _ *http.Request) {
		if clustered.Load() {
			writeErr(w, 501, "not_in_cluster_mode", "GET /v1/stats is not served in cluster mode yet", nil)
			return
		}
		writeJSON(w, 200, map[string]any{"uptime_s": 5, "model": map[string]any{"id": "mnv2i8"}, "collections": []any{}})
	})
	mux.HandleFunc("GET /v1/collections", func(w http.ResponseWriter, _ *http.Request) {
		if clustered.Load() {
			writeErr(w, 501, "not_in_cluster_mode", "GET /v1/collections is not served in cluster mode yet", nil)
			return
		}
		writeJSON(w, 200, map[string]any{"collections": []any{}})
	})
	mux.HandleFunc("GET /v1/rebuilds", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]any{"rebuilds": []any{}}) })
	mux.Handle("/", http.FileServerFS(ui.Assets()))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		mux.ServeHTTP(w, r)
	}))
	defer srv.Close()

	b := newBrowser(t, srv.URL)
	b.open("#/status", "#cluster-replicas")
	if got := b.text("#cluster-summary"); !strings.Contains(got, "n1") || !strings.Contains(got, "log leader n2") ||
		!strings.Contains(got, "3 of 4 replicas serving") || !strings.Contains(got, "3,120") && !strings.Contains(got, "3120") {
		t.Errorf("cluster summary %q", got)
	}
	rows := eval[[]string](b, `[...document.querySelectorAll('#cluster-nodes tbody tr')].map((r) => [...r.cells].map((c) => c.textContent).join('|'))`)
	want := []string{"n2|leader|current|0", "n1|follower|current|0", "n3|follower|catching up|412"}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("log servers:\n%s\nwant\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
	reps := eval[[]string](b, `[...document.querySelectorAll('#cluster-replicas tbody tr')].map((r) => [...r.cells].map((c) => c.textContent).join('|'))`)
	if len(reps) != 4 {
		t.Fatalf("replica rows %q, want 4", reps)
	}
	for i, want := range []string{"serving", "serving", "catching up", "serving"} {
		if !strings.HasPrefix(reps[i], "default|"+string(rune('0'+i))+"|n1|") || !strings.HasSuffix(reps[i], "|"+want) {
			t.Errorf("replica row %d = %q, want shard %d on n1, %s", i, reps[i], i, want)
		}
	}
	if !strings.Contains(reps[2], "2,700|420|") && !strings.Contains(reps[2], "2700|420|") {
		t.Errorf("replica row 2 = %q, want applied 2700, lag 420", reps[2])
	}
	if text := b.text("#page-status"); strings.Contains(text, "undefined") || strings.Contains(text, "NaN") || strings.Contains(text, "[object") || strings.Contains(text, "null") {
		t.Errorf("status page shows unformatted values: %q", text)
	}
	if got := b.text("#status-error"); !strings.Contains(got, "not served in cluster mode") {
		t.Errorf("in cluster mode the page says %q about the figures /v1/stats would give", got)
	}
	b.noConsoleProblems("status of 501")

	clustered.Store(false)
	b.do("reload", 30*time.Second, chromedp.Reload())
	b.wait("the stats tiles", `document.querySelector('#tile-size') !== null`, 15*time.Second)
	b.wait("the cluster section hidden", `document.querySelector('#status-cluster').hidden`, 10*time.Second)
}
