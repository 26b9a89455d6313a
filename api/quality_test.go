package api

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/quality"
)

// The monitor's arithmetic (recall sampler, feedback windows, drift, probes) is tested in package
// quality; these tests drive its HTTP side.

// TestFeedbackEndpoint drives POST /v1/collections/{c}/feedback over HTTP.
func TestFeedbackEndpoint(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) { c.Limits.MaxK, c.Limits.DefaultK = 3, 2 })
	tests := []struct {
		name, coll, body string
		status           int
		code, msg        string
	}{
		{"judged and clicked", "default", `{"query_id":"q1","k":2,"results":[{"id":"a","relevant":true},{"id":"b","relevant":false}],"clicked":["a"]}`, 202, "", ""},
		{"click only", "default", `{"clicked":["a"]}`, 202, "", ""},
		{"empty", "default", `{}`, 400, "bad_request", "needs results"},
		{"unknown field", "default", `{"clicks":["a"]}`, 400, "bad_request", "unknown field"},
		{"not JSON", "default", `relevant`, 400, "bad_request", "malformed JSON"},
		{"empty id", "default", `{"results":[{"id":""}]}`, 400, "bad_request", "results[0].id"},
		{"negative k", "default", `{"k":-1,"clicked":["a"]}`, 400, "bad_request", "k must be in 1..3"},
		{"too many results", "default", `{"results":[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d"}]}`, 400, "bad_request", "limits.max_k"},
		{"unknown collection", "nope", `{"clicked":["a"]}`, 404, "collection_not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, "POST", ts.url+"/v1/collections/"+tt.coll+"/feedback", "application/json", strings.NewReader(tt.body))
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.code != "" {
				if got := r.errorCode(t); got != tt.code {
					t.Fatalf("code %q, want %q", got, tt.code)
				}
			}
			if !strings.Contains(string(r.body), tt.msg) {
				t.Fatalf("body does not name %q: %s", tt.msg, r.body)
			}
		})
	}
	var st struct {
		Quality struct {
			Collections map[string]struct {
				Feedback feedbackWindowJSON `json:"feedback"`
			} `json:"collections"`
		} `json:"quality"`
	}
	do(t, "GET", ts.url+"/v1/stats", "", nil).json(t, &st)
	fb := st.Quality.Collections["default"].Feedback
	if fb.Events != 2 || fb.Judged != 1 || fb.PrecisionAtK != 0.5 || fb.ClickThroughRate != 1 {
		t.Fatalf("stats quality feedback %+v", fb)
	}
	m := string(do(t, "GET", ts.url+"/metrics", "", nil).body)
	for _, want := range []string{`lookalike_quality_feedback_precision{collection="default"} 0.5`, `lookalike_quality_click_through_rate{collection="default"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestQualityLive: real searches feed drift and recall; labelled probes (held-out UKBench photos)
// score precision@3 = 1 against their group-mates; /v1/stats and /metrics show it all.
func TestQualityLive(t *testing.T) {
	dir := ukbenchDir(t)
	manifest := filepath.Join(t.TempDir(), "ukprobes.csv")
	csv := "id,path,group\nukbench00003," + filepath.Join(dir, ukName(3)) + ",0\nukbench00007," + filepath.Join(dir, ukName(7)) + ",1\n"
	if err := os.WriteFile(manifest, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(c *config.Config) {
		c.Quality.RecallSampleRate = 1
		c.Quality.Probes.Manifests = []string{manifest}
		c.Quality.Probes.K = 3
	})
	for _, i := range []int{0, 1, 2, 4, 5, 6, 8, 9} {
		ts.addPhoto(t, ukName(i), fmt.Sprintf(`{"group":%d}`, i/4))
	}
	if r, _ := ts.searchImage(t, photo(t, ukName(10))); r.status != http.StatusOK {
		t.Fatalf("search: %d %s", r.status, r.body)
	}
	type stats struct {
		Quality struct {
			Collections map[string]map[string]map[string]any `json:"collections"`
			Probes      map[string]map[string]any            `json:"probes"`
		} `json:"quality"`
	}
	// The recall sample is measured in the background.
	var st stats
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st = stats{}
		do(t, "GET", ts.url+"/v1/stats", "", nil).json(t, &st)
		if st.Quality.Collections["default"]["ann_recall"]["samples"] == 1.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recall sample measured: %+v", st.Quality)
		}
	}
	ts.quality.RunProbes(context.Background())
	st = stats{}
	do(t, "GET", ts.url+"/v1/stats", "", nil).json(t, &st)
	p := st.Quality.Probes["ukprobes"]
	if p["precision_at_k"] != 1.0 || p["probes"] != 2.0 || p["collection"] != "default" || p["last_run"] == nil {
		t.Fatalf("probe set: %v", p)
	}
	col := st.Quality.Collections["default"]
	if col["ann_recall"]["mean"] != 1.0 || col["drift"]["queries"] != 1.0 {
		t.Fatalf("collection quality: %v", col)
	}
	m := string(do(t, "GET", ts.url+"/metrics", "", nil).body)
	for _, want := range []string{`lookalike_quality_probe_precision{set="ukprobes"} 1`, `lookalike_quality_top1_score_count{collection="default"} 1`, `lookalike_quality_ann_recall{collection="default"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// FuzzFeedbackRequest: the feedback parser never panics, what it accepts is within the limits, and
// recording it keeps the window's figures in range.
func FuzzFeedbackRequest(f *testing.F) {
	for _, s := range []string{
		`{"query_id":"q1","k":2,"results":[{"id":"a","relevant":true},{"id":"b","relevant":false}],"clicked":["a"]}`,
		`{"clicked":["a"]}`, `{"results":[{"id":"a"}]}`, `{}`, `[]`, `{"k":-1}`, `{"results":[{"id":""}]}`,
		`{"results":[{"id":"a","relevant":null}],"k":1000000}`,
	} {
		f.Add([]byte(s))
	}
	cfg := config.Default()
	db, err := index.Open(f.TempDir(), &index.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	if _, err := db.CreateCollection("c", index.CollectionConfig{Fingerprint: "fp", Dims: 2}); err != nil {
		f.Fatal(err)
	}
	q, err := quality.New(cfg, nil, db, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fb, err := parseFeedback(body, cfg.Limits)
		if err != nil {
			if classify(err).Status != http.StatusBadRequest {
				t.Fatalf("parser error %v is not a 400", err)
			}
			return
		}
		if fb.K < 1 || fb.K > cfg.Limits.MaxK || len(fb.Results) > cfg.Limits.MaxK || len(fb.Results)+len(fb.Clicked) == 0 {
			t.Fatalf("accepted out-of-limits request %+v", fb)
		}
		sum, err := q.RecordFeedback("c", fb)
		if err != nil {
			t.Fatalf("accepted feedback not recorded: %v", err)
		}
		if sum.PrecisionAtK < 0 || sum.PrecisionAtK > 1 || sum.ClickThroughRate < 0 || sum.ClickThroughRate > 1 || sum.Events < 1 {
			t.Fatalf("window out of range: %+v", sum)
		}
	})
}
