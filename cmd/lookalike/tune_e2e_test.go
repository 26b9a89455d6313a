package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lookalike/lookalike/client"
	"github.com/lookalike/lookalike/embed/spec"
)

// TestE2ETuneKill9Restart: a tune of an ms317 collection is killed (-9) while it learns; the
// restarted server serves the old generation and learns again; `lookalike tune --server --switch`
// follows it to the end and switches; the projected generation finds an item by its own photo,
// and still does after a restart (the projection is loaded from the data file).
func TestE2ETuneKill9Restart(t *testing.T) {
	const n = 64
	photos := e2ePhotos(t, n)
	data := t.TempDir()
	raw, _ := yaml.Marshal(map[string]any{"lifecycle": map[string]any{"grace": "1h"},
		"model": map[string]any{"profile": "ms317", "feature_map_tensor": spec.DefaultFeatureMapTensor}})
	cfgPath := filepath.Join(t.TempDir(), "lookalike.yaml")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfgPath}
	srv := startServerArgs(t, data, args)
	ctx := context.Background()
	var items []e2eItem
	for i := 0; i < n; i++ {
		items = append(items, e2eItem{id: fmt.Sprintf("item-%04d", i), photo: i, meta: map[string]any{"n": i}})
	}
	if _, res := postBatch(ctx, srv.url, items, photos); res.err != nil || res.status != http.StatusOK {
		t.Fatalf("batch: %v %d %s", res.err, res.status, res.body)
	}
	status := func() client.Rebuild {
		r := httpDo(ctx, "GET", srv.url+"/v1/collections/default/rebuild", "", nil)
		var j client.Rebuild
		if r.status != http.StatusOK || json.Unmarshal(r.body, &j) != nil {
			t.Fatalf("status: %d %s", r.status, r.body)
		}
		return j
	}
	top := func(i int) (gen, id string) {
		r := httpDo(ctx, "POST", srv.url+"/v1/collections/default/search", "image/jpeg", photos[i])
		var out struct {
			Collection string `json:"collection"`
			Results    []struct {
				ID string `json:"id"`
			} `json:"results"`
		}
		if r.status != http.StatusOK || json.Unmarshal(r.body, &out) != nil || len(out.Results) == 0 {
			t.Fatalf("search: %d %s", r.status, r.body)
		}
		return out.Collection, out.Results[0].ID
	}

	if r := httpDo(ctx, "POST", srv.url+"/v1/collections/default/tune", "application/json", []byte(`{"dims":24,"power":0.5,"sample":60}`)); r.status != http.StatusAccepted {
		t.Fatalf("tune: %d %s", r.status, r.body)
	}
	for deadline := time.Now().Add(time.Minute); status().Sampled == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) || status().State != client.RebuildLearning {
			t.Fatalf("the tune is not learning: %+v", status())
		}
	}
	srv.kill9()
	srv = startServerArgs(t, data, args)
	if j := status(); j.State != client.RebuildLearning || j.Tune == nil || j.Tune.Dims != 24 {
		t.Fatalf("after kill -9 the tune is %+v, want learning again", j)
	}
	if gen, id := top(7); gen != "default" || id != "item-0007" {
		t.Errorf("while learning: %s from %s, want item-0007 from default", id, gen)
	}

	// the CLI finds the tune running (the same options), follows it and switches
	code, out, errOut := runCLI(t, "tune", "--server", srv.url, "--dims", "24", "--power", "0.5", "--sample", "60", "--switch", "--json")
	var j client.Rebuild
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil {
		t.Fatalf("lookalike tune: exit %d, %s %s", code, out, errOut)
	}
	if j.State != client.RebuildSwitched || !strings.HasPrefix(j.Projection, "pw24:") || !strings.HasSuffix(j.Fingerprint, "@ms317+"+j.Projection) || j.Copied != n {
		t.Fatalf("tune after the switch: %+v", j)
	}
	for _, i := range []int{3, 42} {
		if gen, id := top(i); gen != "default@2" || id != fmt.Sprintf("item-%04d", i) {
			t.Errorf("projected: %s from %s, want item-%04d from default@2", id, gen, i)
		}
	}

	if code := srv.terminate(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	srv = startServerArgs(t, data, args)
	r := httpDo(ctx, "GET", srv.url+"/v1/collections/default", "", nil)
	var ci struct {
		Name       string `json:"name"`
		Dims       int    `json:"dims"`
		Projection string `json:"projection"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &ci) != nil || ci.Name != "default@2" || ci.Dims != 24 || ci.Projection != j.Projection {
		t.Fatalf("after a restart: %d %s", r.status, r.body)
	}
	if gen, id := top(42); gen != "default@2" || id != "item-0042" {
		t.Errorf("after a restart: %s from %s, want item-0042 from default@2", id, gen)
	}
}
