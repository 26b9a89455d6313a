package api

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/lifecycle"
)

// tuneFixture is a server with a feature-map engine, a grace period short enough that a switched
// job is done at once (so the next tune may start), and n UKBench photos in the collection shop
// of profile ms317.
func tuneFixture(t *testing.T, n int) *testServer {
	t.Helper()
	ts := newServerWith(t, featureMapEngine(t), func(c *config.Config) { c.Lifecycle.Grace = time.Millisecond })
	if r := do(t, "POST", ts.url+"/v1/collections", "application/json", strings.NewReader(`{"name":"shop","profile":"ms317"}`)); r.status != http.StatusCreated {
		t.Fatalf("create shop: %d %s", r.status, r.body)
	}
	for i := 0; i < n; i++ {
		name := ukName(i)
		body, ct := multipartBody(t, part{"image", name, photo(t, name)}, part{"id", "", []byte(strings.TrimSuffix(name, ".jpg"))})
		if r := do(t, "POST", ts.url+"/v1/collections/shop/items", ct, body); r.status != http.StatusCreated {
			t.Fatalf("add %s: %d %s", name, r.status, r.body)
		}
	}
	return ts
}

// waitJob polls the rebuild of col until it reaches state (failing on failed).
func waitJob(t *testing.T, ts *testServer, col, state string) lifecycle.Job {
	t.Helper()
	// generous: learning is an eigendecomposition of the model's channels, slow on a busy machine
	var last []byte
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var j lifecycle.Job
		r := do(t, "GET", ts.url+"/v1/collections/"+col+"/rebuild", "", nil)
		r.json(t, &j)
		if j.State == state {
			return j
		}
		if j.State == lifecycle.StateFailed {
			t.Fatalf("rebuild of %s failed: %s", col, r.body)
		}
		last = r.body
	}
	t.Fatalf("rebuild of %s did not reach %s: %s", col, state, last)
	return lifecycle.Job{}
}

func tune(t *testing.T, ts *testServer, col, body string) response {
	t.Helper()
	return do(t, "POST", ts.url+"/v1/collections/"+col+"/tune", "application/json", strings.NewReader(body))
}

// searchShop searches shop by the stored source rendition of UKBench item i (the photo its
// vector was made from: a rebuild embeds that, not the upload) and returns the generation that
// answered and the top id.
func searchShop(t *testing.T, ts *testServer, i int, extra ...part) (gen, top string, sr searchResponse) {
	t.Helper()
	src := do(t, "GET", ts.url+"/v1/collections/shop/items/"+strings.TrimSuffix(ukName(i), ".jpg")+"/source", "", nil)
	if src.status != http.StatusOK {
		t.Fatalf("source of %d: %d", i, src.status)
	}
	body, ct := multipartBody(t, append([]part{{"image", "q.jpg", src.body}}, extra...)...)
	r := do(t, "POST", ts.url+"/v1/collections/shop/search", ct, body)
	r.json(t, &sr)
	if r.status != http.StatusOK || len(sr.Results) == 0 {
		t.Fatalf("search shop by %d: %d %s", i, r.status, r.body)
	}
	return sr.Collection, sr.Results[0].ID, sr
}

// TestTuneRefusals: bad bodies, a fast collection, too few items, and turning off a projection a
// collection does not have are refused with their codes, and leave no job.
func TestTuneRefusals(t *testing.T) {
	ts := tuneFixture(t, 4)
	for _, tc := range []struct {
		name, col, body string
		status          int
		code            string
	}{
		{"fast collection", "default", `{"dims":32}`, http.StatusConflict, "not_regional"},
		{"too few items for the default 512", "shop", ``, http.StatusConflict, "too_few_items"},
		{"too few items for 16", "shop", `{"dims":16}`, http.StatusConflict, "too_few_items"},
		{"dims below the minimum", "shop", `{"dims":8}`, http.StatusBadRequest, "invalid_tune"},
		{"dims above the channels", "shop", `{"dims":2000}`, http.StatusBadRequest, "invalid_tune"},
		{"negative dims", "shop", `{"dims":-1}`, http.StatusBadRequest, "invalid_tune"},
		{"power above 1", "shop", `{"dims":16,"power":1.5}`, http.StatusBadRequest, "invalid_tune"},
		{"negative power", "shop", `{"dims":16,"power":-0.5}`, http.StatusBadRequest, "invalid_tune"},
		{"sample below the need", "shop", `{"dims":16,"sample":10}`, http.StatusBadRequest, "invalid_tune"},
		{"projection by name", "shop", `{"projection":"pw32"}`, http.StatusBadRequest, "bad_request"},
		{"none and dims", "shop", `{"projection":"none","dims":32}`, http.StatusBadRequest, "bad_request"},
		{"malformed", "shop", `{"dims":"x"}`, http.StatusBadRequest, "bad_request"},
		{"unknown field", "shop", `{"dim":32}`, http.StatusBadRequest, "bad_request"},
		{"off without a projection", "shop", `{"projection":"none"}`, http.StatusBadRequest, "nothing_to_rebuild"},
		{"unknown collection", "nope", `{}`, http.StatusNotFound, "collection_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tune(t, ts, tc.col, tc.body)
			e := r.apiError(t)
			if r.status != tc.status || e.Code != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if tc.code == "too_few_items" && (e.Details["items"] != float64(4) || e.Details["needed"] == nil || !strings.Contains(e.Message, "at least")) {
				t.Errorf("too_few_items does not say how many are needed: %s", r.body)
			}
		})
	}
	for _, col := range []string{"shop", "default"} {
		if r := do(t, "GET", ts.url+"/v1/collections/"+col+"/rebuild", "", nil); r.status != http.StatusNotFound {
			t.Errorf("a refused tune left a job on %s: %d %s", col, r.status, r.body)
		}
	}
}

// TestTune: a tune learns a projection from the collection's photos and rebuilds it into a new
// generation whose fingerprint names it; after the switch, searches by photo (whole, cropped, by
// photo_id) find each item first; the projection is read back from the data file; a tune with
// other dimensions makes another fingerprint, and turning the projection off rebuilds into the
// unprojected vectors.
func TestTune(t *testing.T) {
	const n = 40
	ts := tuneFixture(t, n)
	shop, err := ts.db.Collection("shop")
	if err != nil {
		t.Fatal(err)
	}
	baseFP := shop.Fingerprint()
	want := func(i int) string { return strings.TrimSuffix(ukName(i), ".jpg") }

	r := tune(t, ts, "shop", `{"dims":16,"power":0.5,"sample":36}`)
	var j lifecycle.Job
	r.json(t, &j)
	if r.status != http.StatusAccepted || j.State != lifecycle.StateLearning || j.Tune == nil || j.Tune.Dims != 16 || j.To != "shop@2" {
		t.Fatalf("tune: %d %s", r.status, r.body)
	}
	if r := tune(t, ts, "shop", `{"dims":20}`); r.status != http.StatusConflict || r.errorCode(t) != "rebuild_running" {
		t.Errorf("a second tune while the first runs: %d %s, want 409 rebuild_running", r.status, r.body)
	}
	// while learning there is no shadow to compare with (checked only if it is still learning after)
	rep := do(t, "GET", ts.url+"/v1/collections/shop/rebuild/report", "", nil)
	var now lifecycle.Job
	do(t, "GET", ts.url+"/v1/collections/shop/rebuild", "", nil).json(t, &now)
	if now.State == lifecycle.StateLearning && (rep.status != http.StatusConflict || rep.errorCode(t) != "rebuild_not_ready") {
		t.Errorf("report while learning: %d %s, want 409 rebuild_not_ready", rep.status, rep.body)
	}
	j = waitJob(t, ts, "shop", lifecycle.StateReady)
	if !strings.HasPrefix(j.Projection, "pw16:") || j.Fingerprint != spec.WithProjection(baseFP, j.Projection) || j.Sampled != 36 || j.Copied != n {
		t.Fatalf("tuned job %+v (base fingerprint %s)", j, baseFP)
	}
	shadow, err := ts.db.Collection("shop@2")
	if err != nil || shadow.Fingerprint() != j.Fingerprint || shadow.Info().Dims != 16 || shadow.Info().Count != n {
		t.Fatalf("shadow %v: %+v", err, shadow.Info())
	}
	// before the switch the old generation answers
	if gen, top, _ := searchShop(t, ts, 5); gen != "shop" || top != "ukbench00005" {
		t.Errorf("before the switch: %s from %s", top, gen)
	}
	if r := do(t, "POST", ts.url+"/v1/collections/shop/switch", "application/json", nil); r.status != http.StatusOK {
		t.Fatalf("switch: %d %s", r.status, r.body)
	}
	var ci collectionJSON
	do(t, "GET", ts.url+"/v1/collections/shop", "", nil).json(t, &ci)
	if ci.Name != "shop@2" || ci.Projection != j.Projection || ci.Dims != 16 || ci.Profile != "ms317" {
		t.Errorf("collection after the switch: %+v", ci)
	}
	for _, i := range []int{0, 17, 29, n - 1} {
		gen, top, sr := searchShop(t, ts, i)
		if gen != "shop@2" || top != want(i) || sr.Results[0].Score < 0.999 {
			t.Errorf("search by photo %d: %s (score %.4f) from %s, want %s, 1, from shop@2", i, top, sr.Results[0].Score, gen, want(i))
		}
		// the kept photo, cropped to the whole of it, is embedded with the projection too
		src := do(t, "GET", ts.url+"/v1/collections/shop/items/"+want(i)+"/source", "", nil)
		cfg, _, err := image.DecodeConfig(bytes.NewReader(src.body))
		if err != nil {
			t.Fatal(err)
		}
		crop := part{"crop", "", []byte(fmt.Sprintf("0,0,%d,%d", cfg.Width, cfg.Height))}
		body, ct := multipartBody(t, part{"photo_id", "", []byte(sr.PhotoID)}, crop)
		var again searchResponse
		r := do(t, "POST", ts.url+"/v1/collections/shop/search", ct, body)
		r.json(t, &again)
		if r.status != http.StatusOK || len(again.Results) == 0 || again.Results[0].ID != top {
			t.Errorf("photo_id %s with a crop: %d %s", sr.PhotoID, r.status, r.body)
		}
	}
	// explain weighs the feature map by the query carried back through the projection
	r = do(t, "GET", ts.url+"/v1/collections/shop/search/explain?query_id=ukbench00001&id=ukbench00002&format=json", "", nil)
	var ex struct {
		Score float32     `json:"score"`
		Grid  [][]float32 `json:"grid"`
	}
	r.json(t, &ex)
	if r.status != http.StatusOK || len(ex.Grid) == 0 || ex.Score <= 0 {
		t.Errorf("explain on the projected generation: %d %.300s", r.status, r.body)
	}
	// the projection is read back from bbolt, as after a restart
	p, err := lifecycle.NewProjections(ts.db).Get(j.Projection)
	if err != nil || p.Name() != j.Projection || p.Dims != 16 {
		t.Fatalf("projection from the data file: %v", err)
	}
	eng, ok := lifecycle.WithFingerprint(featureMapEngine(t), j.Fingerprint, lifecycle.NewProjections(ts.db))
	if !ok || eng.Info().Dims != 16 || eng.Info().Fingerprint != j.Fingerprint {
		t.Fatalf("engine for %s after a reopen: %v", j.Fingerprint, ok)
	}
	waitJob(t, ts, "shop", lifecycle.StateDone)

	// another tune: other dimensions, another fingerprint, learned from the projected generation's
	// stored photos
	// the default power (0: plain PCA once embed/project names it pca<dims>)
	if r := tune(t, ts, "shop", `{"dims":20,"sample":40}`); r.status != http.StatusAccepted {
		t.Fatalf("second tune: %d %s", r.status, r.body)
	}
	j2 := waitJob(t, ts, "shop", lifecycle.StateReady)
	if !strings.Contains(j2.Projection, "20:") || j2.Fingerprint == j.Fingerprint || j2.Fingerprint != spec.WithProjection(baseFP, j2.Projection) || j2.To != "shop@3" {
		t.Fatalf("second tune %+v (first %s)", j2, j.Fingerprint)
	}
	if r := do(t, "POST", ts.url+"/v1/collections/shop/switch", "application/json", nil); r.status != http.StatusOK {
		t.Fatalf("switch: %d %s", r.status, r.body)
	}
	waitJob(t, ts, "shop", lifecycle.StateDone)

	// projection off: a rebuild into the vectors the collection started with
	r = tune(t, ts, "shop", `{"projection":"none"}`)
	var off lifecycle.Job
	r.json(t, &off)
	if r.status != http.StatusAccepted || off.Fingerprint != baseFP || off.Projection != "" {
		t.Fatalf("projection off: %d %s", r.status, r.body)
	}
	waitJob(t, ts, "shop", lifecycle.StateReady)
	if r := do(t, "POST", ts.url+"/v1/collections/shop/switch", "application/json", nil); r.status != http.StatusOK {
		t.Fatalf("switch: %d %s", r.status, r.body)
	}
	if gen, top, _ := searchShop(t, ts, 9); gen != "shop@4" || top != "ukbench00009" {
		t.Errorf("without the projection: %s from %s", top, gen)
	}
	if col, _ := ts.db.Collection("shop@4"); col == nil || col.Info().Dims != shop.Info().Dims {
		t.Errorf("shop@4 is not of the unprojected dimensions")
	}
}

// FuzzTuneRequest: any body either is refused with a 400 or gives options in range of what the
// lifecycle manager then checks (dims not negative; projection off only as dims 0).
func FuzzTuneRequest(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"dims":512}`, `{"dims":0}`, `{"projection":"none"}`, `{"projection":"none","dims":0}`,
		`{"dims":-3}`, `{"power":0.5,"sample":100}`, `{"sample":-1}`, `{"dims":1e99}`, `{"power":"x"}`, `[1]`, `{"dims":16}{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req tuneRequest
		if len(body) > 0 {
			if err := decodeJSONBody(body, &req); err != nil {
				return
			}
		}
		o, err := req.options()
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
				t.Fatalf("%q: %v, want a 400", body, err)
			}
			return
		}
		if o.Dims < 0 || (o.Dims == 0 && req.Dims == nil && strings.TrimSpace(strings.ToLower(req.Projection)) != "none") {
			t.Fatalf("%q gave %+v", body, o)
		}
	})
}
