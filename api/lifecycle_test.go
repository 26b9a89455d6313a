package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/lifecycle"
)

// rebuildFixture is a server with a feature-map engine (so regional profiles can be rebuilt into)
// and a few UKBench photos in default (metadata group gN for object N), with a probe set of the
// held-out photos 3 and 7 (quality.probes, k 2).
func rebuildFixture(t *testing.T, photos []int, mutate func(*config.Config)) *testServer {
	t.Helper()
	dir := ukbenchDir(t)
	manifest := filepath.Join(t.TempDir(), "ukprobes.csv")
	csv := "id,path,group\nukbench00003," + filepath.Join(dir, ukName(3)) + ",g0\nukbench00007," + filepath.Join(dir, ukName(7)) + ",g1\n"
	if err := os.WriteFile(manifest, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := newServerWith(t, featureMapEngine(t), func(c *config.Config) {
		c.Quality.Probes.Manifests, c.Quality.Probes.K = []string{manifest}, 2
		if mutate != nil {
			mutate(c)
		}
	})
	for _, i := range photos {
		n := ukName(i)
		body, ct := multipartBody(t, part{"image", n, photo(t, n)}, part{"id", "", []byte(strings.TrimSuffix(n, ".jpg"))},
			part{"metadata", "", []byte(fmt.Sprintf(`{"group":"g%d"}`, i/4))})
		if r := do(t, "POST", ts.url+"/v1/collections/default/items", ct, body); r.status != http.StatusCreated {
			t.Fatalf("add %s: %d %s", n, r.status, r.body)
		}
	}
	return ts
}

// waitRebuild polls the rebuild of default until it reaches state (failing on failed).
func waitRebuild(t *testing.T, ts *testServer, state string) lifecycle.Job {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var j lifecycle.Job
		r := do(t, "GET", ts.url+"/v1/collections/default/rebuild", "", nil)
		r.json(t, &j)
		if j.State == state {
			return j
		}
		if j.State == lifecycle.StateFailed {
			t.Fatalf("rebuild failed: %s", r.body)
		}
	}
	t.Fatalf("rebuild did not reach %s", state)
	return lifecycle.Job{}
}

// TestRebuildTarget: a rebuild names its target by model, profile or both; unknown models and
// profiles, no target at all and a target that makes the vectors already held are 400; a rebuild
// into another profile of the same model builds a generation of that profile's fingerprint, and
// its report scores the probe sets on both generations.
func TestRebuildTarget(t *testing.T) {
	ts := rebuildFixture(t, []int{0, 1, 2, 4, 5}, nil)
	start := func(body string) response {
		return do(t, "POST", ts.url+"/v1/collections/default/rebuild", "application/json", strings.NewReader(body))
	}
	for _, tc := range []struct{ name, body, code, param string }{
		{"no target", `{}`, "bad_request", "model"},
		{"unknown model", `{"model":"nope"}`, "unknown_model", "model"},
		{"unknown profile", `{"profile":"sharp"}`, "invalid_profile", "profile"},
		{"bad scales", `{"model":"mnv2i8","profile":"rmac:4000"}`, "invalid_profile", "profile"},
		{"same vectors", `{"profile":"fast"}`, "nothing_to_rebuild", ""},
		{"same model, default profile", `{"model":"mnv2i8"}`, "nothing_to_rebuild", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(tc.body)
			e := r.apiError(t)
			if r.status != http.StatusBadRequest || e.Code != tc.code || (tc.param != "" && e.Details["parameter"] != tc.param) {
				t.Errorf("%d %s, want 400 %s (parameter %q)", r.status, r.body, tc.code, tc.param)
			}
		})
	}
	if r := do(t, "GET", ts.url+"/v1/collections/default/rebuild", "", nil); r.status != http.StatusNotFound {
		t.Errorf("a refused rebuild left a job: %d %s", r.status, r.body)
	}

	r := start(`{"profile":"ms317"}`)
	var j lifecycle.Job
	r.json(t, &j)
	_, want, _ := featureMapEngine(t).Info().ProfileFingerprint("ms317")
	if r.status != http.StatusAccepted || j.Profile != "ms317" || j.Model != "mnv2i8" || j.Fingerprint != want || j.To != "default@2" {
		t.Fatalf("rebuild into ms317: %d %s (want fingerprint %s)", r.status, r.body, want)
	}
	j = waitRebuild(t, ts, lifecycle.StateReady)
	shadow, err := ts.db.Collection("default@2")
	if err != nil || shadow.Fingerprint() != want || shadow.Info().Count != 5 || j.Copied != 5 {
		t.Fatalf("shadow %v: %+v; job %+v", err, shadow.Info(), j)
	}
	if r := start(`{"profile":"ms448"}`); r.status != http.StatusConflict || r.errorCode(t) != "rebuild_running" {
		t.Errorf("second rebuild: %d %s, want 409 rebuild_running", r.status, r.body)
	}

	var rep lifecycle.Report
	r = do(t, "GET", ts.url+"/v1/collections/default/rebuild/report", "", nil)
	r.json(t, &rep)
	for _, arm := range []lifecycle.Arm{rep.Live, rep.Shadow} {
		sc, ok := arm.Probes["ukprobes"]
		if r.status != http.StatusOK || !ok || sc.Probes != 2 || sc.K != 2 || arm.ProbePrecision == nil || *arm.ProbePrecision != sc.Precision || sc.Precision < 0.5 {
			t.Errorf("report arm %s: probes %+v (want set ukprobes, 2 probes, k 2, precision >= 0.5): %d %s", arm.Collection, arm.Probes, r.status, r.body)
		}
	}
	if rep.Live.Collection != "default" || rep.Shadow.Collection != "default@2" {
		t.Errorf("report arms %s, %s", rep.Live.Collection, rep.Shadow.Collection)
	}
	t.Logf("report: %s", r.body)
}

// TestRebuildCanary: with lifecycle.canary_share 1 and a ready shadow, searches by photo and by
// item on the alias are answered from the shadow and say so; a search by raw vector, a page after
// the first and a search naming no alias stay live; the Prometheus series carry the arm
// (generation live/shadow) and the alias's generation, which follows the switch, after which
// nothing is a canary.
func TestRebuildCanary(t *testing.T) {
	ts := rebuildFixture(t, []int{0, 1, 2, 4, 5, 6}, func(c *config.Config) { c.Lifecycle.CanaryShare = 1 })
	q := photo(t, ukName(3))
	if _, sr := ts.searchImage(t, q); sr.Collection != "default" || sr.Canary {
		t.Fatalf("search before any rebuild: %+v", sr)
	}
	if r := do(t, "POST", ts.url+"/v1/collections/default/rebuild", "application/json", strings.NewReader(`{"profile":"ms317"}`)); r.status != http.StatusAccepted {
		t.Fatalf("rebuild: %d %s", r.status, r.body)
	}
	waitRebuild(t, ts, lifecycle.StateReady)

	r, sr := ts.searchImage(t, q, part{"k", "", []byte("2")})
	if sr.Collection != "default@2" || sr.Generation != 2 || !sr.Canary || len(sr.Results) != 2 || !strings.HasPrefix(sr.Results[0].ID, "ukbench0000") {
		t.Errorf("search by photo with canary_share 1: %d %s", r.status, r.body)
	}
	var page2 searchResponse
	do(t, "POST", ts.url+"/v1/collections/default/search", "application/json",
		strings.NewReader(`{"image":"`+base64.StdEncoding.EncodeToString(q)+`","k":2,"cursor":"`+sr.NextCursor+`"}`)).json(t, &page2)
	if page2.Collection != "default" || page2.Canary {
		t.Errorf("second page went to the canary: %+v", page2)
	}
	var sim searchResponse
	do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00000/similar?k=2", "", nil).json(t, &sim)
	if sim.Collection != "default@2" || !sim.Canary {
		t.Errorf("similar with canary_share 1: %+v", sim)
	}
	it, err := ts.db.Collection("default")
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := it.Get("ukbench00000")
	vec, _ := json.Marshal(map[string]any{"vector": stored.Vector, "k": 2})
	var byVec searchResponse
	do(t, "POST", ts.url+"/v1/collections/default/search", "application/json", bytes.NewReader(vec)).json(t, &byVec)
	if byVec.Collection != "default" || byVec.Canary || len(byVec.Results) != 2 {
		t.Errorf("search by raw vector went to the canary: %+v", byVec)
	}

	metrics := func() string { return string(do(t, "GET", ts.url+"/metrics", "", nil).body) }
	m := metrics()
	for _, want := range []string{`lookalike_search_duration_seconds_count{generation="shadow"} 2`, `lookalike_search_duration_seconds_count{generation="live"} 3`,
		`lookalike_search_top_score_count{generation="shadow"} 2`, `lookalike_alias_generation{alias="default"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if r := do(t, "POST", ts.url+"/v1/collections/default/switch", "application/json", nil); r.status != http.StatusOK {
		t.Fatalf("switch: %d %s", r.status, r.body)
	}
	if _, sr := ts.searchImage(t, q); sr.Collection != "default@2" || sr.Canary {
		t.Errorf("search after the switch: %+v", sr)
	}
	m = metrics()
	for _, want := range []string{`lookalike_alias_generation{alias="default"} 2`, `lookalike_search_duration_seconds_count{generation="live"} 4`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics after the switch lacks %s", want)
		}
	}
}
