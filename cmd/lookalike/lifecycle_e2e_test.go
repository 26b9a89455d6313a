package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lookalike/lookalike/embed/spec"
)

// TestE2ERebuildSwitchRollback: 500 items under the fast profile; a rebuild to another profile
// (ms317) and model spec while a writer adds,
// replaces, edits and deletes; a kill -9 mid-copy; the report; the switch (the new generation holds
// exactly the acknowledged state and answers searches); the rollback (the old generation has the
// writes made in between).
func TestE2ERebuildSwitchRollback(t *testing.T) {
	photos := e2ePhotos(t, 520)
	data := t.TempDir()
	// The other model differs only in preprocessing: the same file, shorter side 240.
	alt := spec.DefaultModel()
	alt.ID, alt.ResizeShorter, alt.FeatureMapTensor = "mnv2i8-r240", 240, spec.DefaultFeatureMapTensor
	raw, _ := yaml.Marshal(map[string]any{"models": []spec.Model{alt}, "lifecycle": map[string]any{"grace": "1h"},
		"model": map[string]any{"profile": spec.ProfileFast}})
	cfgPath := filepath.Join(t.TempDir(), "lookalike.yaml")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfgPath}
	srv := startServerArgs(t, data, args)
	ctx := context.Background()
	// The two models share the session pool: together they have no more sessions than one alone.
	var models struct {
		Models []struct {
			ID       string `json:"id"`
			Sessions int    `json:"sessions"`
		} `json:"models"`
	}
	if r := httpDo(ctx, "GET", srv.url+"/v1/models", "", nil); json.Unmarshal(r.body, &models) != nil || len(models.Models) != 2 {
		t.Fatalf("models: %d %s", r.status, r.body)
	}
	if n := models.Models[0].Sessions + models.Models[1].Sessions; n > max(runtime.NumCPU(), 2) || models.Models[0].Sessions < 1 || models.Models[1].Sessions < 1 {
		t.Errorf("two models hold %d sessions (%+v) on %d cores: the pool is not shared", n, models.Models, runtime.NumCPU())
	}

	var mu sync.Mutex
	want := map[string]map[string]any{} // acknowledged state: id → metadata
	put := func(base string, items []e2eItem) {
		acked, res := postBatch(ctx, base, items, photos)
		if res.err != nil || res.status != http.StatusOK {
			t.Fatalf("batch: %v %d %s", res.err, res.status, res.body)
		}
		mu.Lock()
		for _, id := range acked {
			for _, it := range items {
				if it.id == id {
					want[id] = jsonRoundTrip(it.meta)
				}
			}
		}
		mu.Unlock()
	}
	for b := 0; b < 10; b++ {
		var items []e2eItem
		for i := b * 50; i < (b+1)*50; i++ {
			items = append(items, e2eItem{id: fmt.Sprintf("item-%04d", i), photo: i, meta: map[string]any{"n": i, "rev": 0}})
		}
		put(srv.url, items)
	}
	for i := 0; i < 4; i++ { // real queries for the report
		httpDo(ctx, "POST", srv.url+"/v1/collections/default/search", "image/jpeg", photos[i*7])
	}

	res := httpDo(ctx, "POST", srv.url+"/v1/collections/default/rebuild", "application/json", []byte(`{"model":"mnv2i8-r240","profile":"ms317"}`))
	if res.status != http.StatusAccepted {
		t.Fatalf("rebuild: %d %s", res.status, res.body)
	}

	// The writer: adds, replaces (another photo), edits (same photo, new metadata) and deletes.
	writer := func(base string, round int) {
		i := 500 + round%20
		put(base, []e2eItem{{id: fmt.Sprintf("new-%03d", round), photo: i, meta: map[string]any{"round": round}}})
		put(base, []e2eItem{{id: fmt.Sprintf("item-%04d", round*3%500), photo: (round * 11) % 500, meta: map[string]any{"rev": round}}})
		victim := fmt.Sprintf("item-%04d", (round*7+1)%500)
		if r := httpDo(ctx, "DELETE", base+"/v1/collections/default/items/"+url.PathEscape(victim), "", nil); r.status == http.StatusOK || r.status == http.StatusNotFound {
			mu.Lock()
			delete(want, victim)
			mu.Unlock()
		} else {
			t.Errorf("delete %s: %d %s", victim, r.status, r.body)
		}
	}
	status := func(base string) map[string]any {
		r := httpDo(ctx, "GET", base+"/v1/collections/default/rebuild", "", nil)
		var st map[string]any
		if r.status != http.StatusOK || json.Unmarshal(r.body, &st) != nil {
			t.Fatalf("status: %d %s", r.status, r.body)
		}
		return st
	}
	round := 0
	killed := false
	for deadline := time.Now().Add(5 * time.Minute); ; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("rebuild did not finish: %v", status(srv.url))
		}
		writer(srv.url, round)
		st := status(srv.url)
		if !killed && st["copied"].(float64) >= 100 {
			srv.kill9()
			killed = true
			srv = startServerArgs(t, data, args)
			st = status(srv.url)
			t.Logf("after kill -9: %v", st)
			if st["state"] != "copying" && st["state"] != "ready" {
				t.Fatalf("after restart the rebuild is %v", st["state"])
			}
			continue
		}
		if st["state"] == "ready" && killed && round > 5 {
			if st["profile"] != "ms317" {
				t.Fatalf("the rebuild's profile is %v, want ms317", st["profile"])
			}
			break
		}
		if st["state"] == "failed" {
			t.Fatalf("rebuild failed: %v", st)
		}
	}

	for i := 0; i < 4; i++ { // the restart forgot the earlier queries
		httpDo(ctx, "POST", srv.url+"/v1/collections/default/search", "image/jpeg", photos[i*7])
	}
	rep := httpDo(ctx, "GET", srv.url+"/v1/collections/default/rebuild/report", "", nil)
	var report struct {
		Queries int     `json:"queries"`
		Overlap float64 `json:"overlap_at_10"`
	}
	if rep.status != http.StatusOK || json.Unmarshal(rep.body, &report) != nil || report.Queries != 4 || report.Overlap <= 0 {
		t.Fatalf("report: %d %s", rep.status, rep.body)
	}
	t.Logf("report: %s", rep.body)

	if r := httpDo(ctx, "POST", srv.url+"/v1/collections/default/switch", "application/json", nil); r.status != http.StatusOK {
		t.Fatalf("switch: %d %s", r.status, r.body)
	}
	checkGeneration(t, srv.url, "default@2", want)
	checkGeneration(t, srv.url, "default@1", want)
	checkAnswers(t, srv.url, photos[42], "default@2")

	for r := 0; r < 5; r++ { // writes after the switch reach both generations
		writer(srv.url, 1000+r)
	}
	if r := httpDo(ctx, "POST", srv.url+"/v1/collections/default/rollback", "application/json", nil); r.status != http.StatusOK {
		t.Fatalf("rollback: %d %s", r.status, r.body)
	}
	checkGeneration(t, srv.url, "default", want)
	checkGeneration(t, srv.url, "default@2", want)
	checkAnswers(t, srv.url, photos[42], "default")
	t.Logf("%d writer rounds, %d items at the end", round, len(want))
}

// checkGeneration lists a generation and compares it with the acknowledged state.
func checkGeneration(t *testing.T, base, name string, want map[string]map[string]any) {
	t.Helper()
	got := map[string]map[string]any{}
	for cursor := ""; ; {
		r := httpDo(context.Background(), "GET", base+"/v1/collections/"+name+"/items?limit=1000&cursor="+url.QueryEscape(cursor), "", nil)
		var page struct {
			Items []struct {
				ID       string         `json:"id"`
				Metadata map[string]any `json:"metadata"`
			} `json:"items"`
			Next string `json:"next_cursor"`
		}
		if r.status != http.StatusOK || json.Unmarshal(r.body, &page) != nil {
			t.Fatalf("list %s: %d %s", name, r.status, r.body)
		}
		for _, it := range page.Items {
			got[it.ID] = it.Metadata
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s holds %d items, %d acknowledged", name, len(got), len(want))
	}
	for id, m := range want {
		if !reflect.DeepEqual(got[id], m) {
			t.Errorf("%s: item %s is %v, want %v", name, id, got[id], m)
		}
	}
}

// checkAnswers searches the alias by photo and checks the response names the generation.
func checkAnswers(t *testing.T, base string, photo []byte, gen string) {
	t.Helper()
	r := httpDo(context.Background(), "POST", base+"/v1/collections/default/search", "image/jpeg", photo)
	var out struct {
		Collection string `json:"collection"`
		Results    []any  `json:"results"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &out) != nil || out.Collection != gen || len(out.Results) == 0 {
		t.Fatalf("search answered from %q (want %s): %d %s", out.Collection, gen, r.status, r.body)
	}
}
