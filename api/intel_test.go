package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/intel"
	"github.com/lookalike/lookalike/internal/config"
)

// An engine that also returns the spatial feature map, for explain (sessions cost time: one for
// the package's tests).
var (
	fmapOnce sync.Once
	fmapEng  *embed.Engine
	fmapErr  error
)

func featureMapEngine(t *testing.T) *embed.Engine {
	t.Helper()
	testEngine(t) // skips when the model is missing
	fmapOnce.Do(func() {
		m := spec.DefaultModel()
		m.FeatureMapTensor = spec.DefaultFeatureMapTensor
		fmapEng, fmapErr = newTestEngine(embed.Options{Device: "cpu", Model: m, Workers: 1})
	})
	if fmapErr != nil {
		t.Fatalf("embed.New with a feature map: %v", fmapErr)
	}
	return fmapEng
}

// newServerWith starts a real server on loopback with the given engine.
func newServerWith(t *testing.T, eng Embedder, mutate func(*config.Config)) *testServer {
	t.Helper()
	return startTestServer(t, eng, nil, mutate)
}

// addBytes uploads an image under id with metadata; extra parts (on_duplicate) are appended.
func (ts *testServer) addBytes(t *testing.T, id string, img []byte, meta string, query string) response {
	t.Helper()
	parts := []part{{"image", id + ".jpg", img}, {"id", "", []byte(id)}}
	if meta != "" {
		parts = append(parts, part{"metadata", "", []byte(meta)})
	}
	body, ct := multipartBody(t, parts...)
	return do(t, "POST", ts.url+"/v1/collections/default/items"+query, ct, body)
}

func TestSuggestTagsAndBulkApply(t *testing.T) {
	ts := newTestServer(t, nil)
	// Five UKBench objects, labelled by object; ukbench00003 and ukbench00007 stay unlabelled and
	// ukbench00011 carries a wrong curated category.
	for i := 0; i < 20; i++ {
		meta := fmt.Sprintf(`{"category":"object-%d","tags":["t%d","all"]}`, i/4, i/4)
		switch i {
		case 3, 7:
			meta = `{"price":5}`
		case 11:
			meta = `{"category":"curated-wrong","tags":["t2","all"]}`
		}
		ts.addPhoto(t, ukName(i), meta)
	}
	type sugResp struct {
		Suggestions map[string][]intel.TagSuggestion `json:"suggestions"`
		Labels      []labelJSON                      `json:"labels"`
	}
	t.Run("by id", func(t *testing.T) {
		r := do(t, "POST", ts.url+"/v1/collections/default/tags:suggest?id=ukbench00003", "", nil)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var sr sugResp
		r.json(t, &sr)
		cat := sr.Suggestions["category"]
		if len(cat) == 0 || cat[0].Value != "object-0" || cat[0].Confidence < 0.2 {
			t.Fatalf("category suggestions %+v, want object-0 first", cat)
		}
		if _, ok := sr.Suggestions["price"]; ok {
			t.Errorf("numeric field suggested: %+v", sr.Suggestions)
		}
		if tags := sr.Suggestions["tags"]; len(tags) == 0 || tags[0].Value != "all" || tags[0].Confidence != 1 {
			t.Errorf("tags %+v: every neighbour carries \"all\"", tags)
		}
	})
	t.Run("by uploaded image", func(t *testing.T) {
		body, ct := multipartBody(t, part{"image", "q.jpg", reencode(t, photo(t, ukName(6)), 0.5, 70)}, part{"k", "", []byte("5")})
		r := do(t, "POST", ts.url+"/v1/collections/default/tags:suggest", ct, body)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var sr sugResp
		r.json(t, &sr)
		if cat := sr.Suggestions["category"]; len(cat) == 0 || cat[0].Value != "object-1" {
			t.Fatalf("category suggestions %+v, want object-1 first", cat)
		}
		if len(sr.Labels) == 0 || sr.Labels[0].Name == "" {
			t.Errorf("no ImageNet labels: %s", r.body)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name, url, ct, body string
			status              int
		}{
			{"nothing", "/v1/collections/default/tags:suggest", "", "", 400},
			{"unknown item", "/v1/collections/default/tags:suggest?id=nope", "", "", 404},
			{"unknown collection", "/v1/collections/nope/tags:suggest?id=x", "", "", 404},
			{"k too large", "/v1/collections/default/tags:suggest?id=ukbench00003&k=999", "", "", 400},
			{"not an image", "/v1/collections/default/tags:suggest", "image/jpeg", "not a jpeg", 415},
			{"apply bad confidence", "/v1/collections/default/tags:apply", "application/json", `{"min_confidence":2}`, 400},
		} {
			r := do(t, "POST", ts.url+tc.url, tc.ct, strings.NewReader(tc.body))
			if r.status != tc.status && !(tc.name == "not an image" && r.status == 422) {
				t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.status)
			} else {
				r.errorCode(t)
			}
		}
	})
	t.Run("bulk", func(t *testing.T) {
		apply := func(body string) intel.TagReport {
			r := do(t, "POST", ts.url+"/v1/collections/default/tags:apply", "application/json", strings.NewReader(body))
			if r.status != 200 {
				t.Fatalf("apply %s: %d %s", body, r.status, r.body)
			}
			var rep intel.TagReport
			r.json(t, &rep)
			return rep
		}
		dry := apply(`{"dry_run":true,"min_confidence":0.3,"fields":["category"]}`)
		if dry.Scanned != 20 || dry.Written["category"] != 2 || dry.Updated != 2 {
			t.Fatalf("dry run %+v: want 2 category values for the 2 unlabelled items", dry)
		}
		var meta map[string]any
		getMeta := func(id string) {
			r := do(t, "GET", ts.url+"/v1/collections/default/items/"+id, "", nil)
			var it itemDetailJSON
			r.json(t, &it)
			meta = nil
			json.Unmarshal(it.Metadata, &meta)
		}
		getMeta("ukbench00003")
		if _, ok := meta["category"]; ok {
			t.Fatalf("dry run wrote: %v", meta)
		}
		// Paged: one item per call, following next_cursor.
		cursor, updated := "", 0
		for pages := 0; ; pages++ {
			rep := apply(fmt.Sprintf(`{"min_confidence":0.3,"limit":7,"cursor":%q}`, cursor))
			updated += rep.Updated
			if cursor = rep.NextCursor; cursor == "" {
				break
			}
			if pages > 5 {
				t.Fatal("tags:apply never ends")
			}
		}
		if updated < 2 {
			t.Errorf("updated %d items, want at least the 2 unlabelled", updated)
		}
		getMeta("ukbench00003")
		if meta["category"] != "object-0" || meta["price"] != float64(5) {
			t.Errorf("ukbench00003 after bulk tagging: %v", meta)
		}
		if auto, _ := meta[intel.AutoTaggedField].(map[string]any); auto["category"] == nil {
			t.Errorf("auto_tagged does not record the suggestion: %v", meta)
		}
		getMeta("ukbench00011")
		if meta["category"] != "curated-wrong" {
			t.Errorf("curated value overwritten without overwrite: %v", meta)
		}
		apply(`{"min_confidence":0.5,"overwrite":true,"fields":["category"]}`)
		getMeta("ukbench00011")
		if meta["category"] != "object-2" {
			t.Errorf("overwrite did not correct the curated value: %v", meta)
		}
	})
}

func TestDuplicatesEndpoint(t *testing.T) {
	ts := newTestServer(t, nil)
	for i := 0; i < 8; i++ {
		ts.addPhoto(t, ukName(i), `{}`)
	}
	orig := photo(t, ukName(0))
	for id, img := range map[string][]byte{
		"zz-same-bytes": orig,                       // exact
		"zz-half-size":  reencode(t, orig, 0.5, 75), // near
	} {
		if r := ts.addBytes(t, id, img, "", ""); r.status != 201 {
			t.Fatalf("add %s: %d %s", id, r.status, r.body)
		}
	}
	get := func(q string) dupPageJSON {
		r := do(t, "GET", ts.url+"/v1/collections/default/duplicates"+q, "", nil)
		if r.status != 200 {
			t.Fatalf("duplicates%s: %d %s", q, r.status, r.body)
		}
		var p dupPageJSON
		r.json(t, &p)
		return p
	}
	tiersOf := func(p dupPageJSON) map[string]string {
		out := map[string]string{}
		for _, c := range p.Clusters {
			for _, m := range c.Items[1:] {
				out[c.Items[0].ID+">"+m.ID] = m.Tier
			}
		}
		return out
	}
	near := tiersOf(get("?tier=near"))
	want := map[string]string{"ukbench00000>zz-same-bytes": intel.TierExact, "ukbench00000>zz-half-size": intel.TierNear}
	if fmt.Sprint(near) != fmt.Sprint(want) {
		t.Errorf("near clusters %v, want %v", near, want)
	}
	if exact := tiersOf(get("?tier=exact")); fmt.Sprint(exact) != fmt.Sprint(map[string]string{"ukbench00000>zz-same-bytes": intel.TierExact}) {
		t.Errorf("exact clusters %v", exact)
	}
	// Similar: group-mates (other photos of the same object) join.
	sim := get("?tier=similar")
	found := false
	for k, tier := range tiersOf(sim) {
		if strings.HasPrefix(k, "ukbench00000>ukbench0000") && tier == intel.TierSimilar {
			found = true
		}
	}
	if !found {
		t.Errorf("similar tier finds no group-mate of ukbench00000: %v", tiersOf(sim))
	}
	// Paging two items at a time reports the same clusters, each once.
	paged := map[string]string{}
	cursor := ""
	for n := 0; ; n++ {
		p := get("?tier=near&limit=2&cursor=" + cursor)
		if p.Scanned > 2 {
			t.Fatalf("page scanned %d items, limit 2", p.Scanned)
		}
		for k, v := range tiersOf(p) {
			if _, dup := paged[k]; dup {
				t.Errorf("pair %s reported twice", k)
			}
			paged[k] = v
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
		if n > 10 {
			t.Fatal("paging never ends")
		}
	}
	if fmt.Sprint(paged) != fmt.Sprint(want) {
		t.Errorf("paged clusters %v, want %v", paged, want)
	}
	for _, q := range []string{"?tier=fuzzy", "?limit=0", "?limit=x"} {
		if r := do(t, "GET", ts.url+"/v1/collections/default/duplicates"+q, "", nil); r.status != 400 {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
}

func TestIngestDuplicatePolicy(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) { c.Intel.OnDuplicate = "reject" })
	orig := photo(t, ukName(4))
	if r := ts.addBytes(t, "orig", orig, `{"category":"lamp"}`, "?on_duplicate=allow"); r.status != 201 {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	if r := ts.addBytes(t, "other", photo(t, ukName(9)), "", ""); r.status != 201 {
		t.Fatalf("a different photo is not a duplicate: %d %s", r.status, r.body)
	}
	copyImg := reencode(t, orig, 0.6, 70)
	// The configured default (reject) applies without a parameter.
	r := ts.addBytes(t, "copy", copyImg, "", "")
	if r.status != http.StatusConflict || r.errorCode(t) != "duplicate" || !strings.Contains(string(r.body), `"orig"`) {
		t.Fatalf("reject: %d %s", r.status, r.body)
	}
	if g := do(t, "GET", ts.url+"/v1/collections/default/items/copy", "", nil); g.status != 404 {
		t.Fatalf("a rejected duplicate was stored: %d", g.status)
	}
	// allow stores it and says what it duplicates, with the tier.
	r = ts.addBytes(t, "copy", copyImg, "", "?on_duplicate=allow")
	var ar addResult
	r.json(t, &ar)
	if r.status != 201 || ar.NearDuplicate == nil || ar.NearDuplicate.ID != "orig" || ar.NearDuplicate.Tier != intel.TierNear {
		t.Fatalf("allow: %d %s", r.status, r.body)
	}
	// Same bytes: the exact tier.
	r = ts.addBytes(t, "same", orig, "", "?on_duplicate=allow")
	r.json(t, &ar)
	if ar.NearDuplicate == nil || ar.NearDuplicate.Tier != intel.TierExact {
		t.Errorf("same bytes: %s", r.body)
	}
	// merge (as a form field): nothing new stored, missing fields added to the existing item.
	body, ct := multipartBody(t, part{"image", "m.jpg", reencode(t, orig, 0.8, 80)}, part{"id", "", []byte("merged")},
		part{"metadata", "", []byte(`{"category":"other","brand":"acme"}`)}, part{"on_duplicate", "", []byte("merge")})
	r = do(t, "POST", ts.url+"/v1/collections/default/items", ct, body)
	r.json(t, &ar)
	if r.status != 200 || ar.MergedInto == "" {
		t.Fatalf("merge: %d %s", r.status, r.body)
	}
	if g := do(t, "GET", ts.url+"/v1/collections/default/items/merged", "", nil); g.status != 404 {
		t.Errorf("merge stored a new item: %d", g.status)
	}
	var it itemDetailJSON
	do(t, "GET", ts.url+"/v1/collections/default/items/"+ar.MergedInto, "", nil).json(t, &it)
	var meta map[string]any
	json.Unmarshal(it.Metadata, &meta)
	if meta["brand"] != "acme" || (ar.MergedInto == "orig" && meta["category"] != "lamp") {
		t.Errorf("merged metadata %v: want brand added and the existing category kept", meta)
	}
	// The batch endpoint applies the policy per item.
	body, ct = multipartBody(t, part{"image", "b1.jpg", reencode(t, orig, 0.7, 60)}, part{"image", "b2.jpg", photo(t, ukName(20))})
	r = do(t, "POST", ts.url+"/v1/collections/default/items:batch?on_duplicate=reject", ct, body)
	if r.status != 200 || !strings.Contains(string(r.body), `"code":"duplicate"`) || !strings.Contains(string(r.body), `"stored":1`) {
		t.Errorf("batch reject: %d %s", r.status, r.body)
	}
	if r := ts.addBytes(t, "x", orig, "", "?on_duplicate=maybe"); r.status != 400 {
		t.Errorf("bad policy: %d %s", r.status, r.body)
	}
}

func TestDiversifyCollapsesNearDuplicates(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) { c.Intel.DiversifyPixels = true })
	for i := 0; i < 12; i++ {
		ts.addPhoto(t, ukName(i), `{}`)
	}
	orig := photo(t, ukName(1))
	for i, scale := range []float64{0.5, 0.7, 0.9} {
		if r := ts.addBytes(t, fmt.Sprintf("copy-%d", i), reencode(t, orig, scale, 70), "", ""); r.status != 201 {
			t.Fatal(r.status, string(r.body))
		}
	}
	copies := func(rs []resultJSON) int {
		n := 0
		for _, r := range rs {
			if r.ID == "ukbench00001" || strings.HasPrefix(r.ID, "copy-") {
				n++
			}
		}
		return n
	}
	similar := func(q string) searchResponse {
		r := do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00000/similar?k=6"+q, "", nil)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var sr searchResponse
		r.json(t, &sr)
		return sr
	}
	if got := similar("&diversify=false"); copies(got.Results) != 4 {
		t.Fatalf("without diversity the 4 copies of ukbench00001 should all rank: %v", ids(got.Results))
	}
	def := similar("")
	if copies(def.Results) != 1 || len(def.Results) != 6 {
		t.Errorf("similar diversifies by default: %v", ids(def.Results))
	}
	// Pages of a diversified ranking neither repeat nor skip.
	r := do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00000/similar?k=3", "", nil)
	var p1 searchResponse
	r.json(t, &p1)
	r = do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00000/similar?k=3&cursor="+p1.NextCursor, "", nil)
	var p2 searchResponse
	r.json(t, &p2)
	if strings.Join(append(ids(p1.Results), ids(p2.Results)...), ",") != strings.Join(ids(def.Results), ",") {
		t.Errorf("pages %v + %v != one page %v", ids(p1.Results), ids(p2.Results), ids(def.Results))
	}
	// Search keeps duplicates unless asked.
	_, plain := ts.searchImage(t, orig, part{"k", "", []byte("6")})
	_, div := ts.searchImage(t, orig, part{"k", "", []byte("6")}, part{"diversify", "", []byte("true")})
	if copies(plain.Results) != 4 || copies(div.Results) != 1 {
		t.Errorf("search: plain %v, diversified %v", ids(plain.Results), ids(div.Results))
	}
}

func TestExplainHeatmap(t *testing.T) {
	t.Run("unavailable without a feature map", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.addPhoto(t, ukName(0), `{}`)
		r := do(t, "GET", ts.url+"/v1/collections/default/search/explain?query_id=ukbench00000&id=ukbench00000", "", nil)
		if r.status != http.StatusNotImplemented || r.errorCode(t) != "explain_unavailable" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	ts := newServerWith(t, featureMapEngine(t), nil)
	for i := 0; i < 4; i++ {
		ts.addPhoto(t, ukName(i), `{}`)
	}
	t.Run("png by query id", func(t *testing.T) {
		r := do(t, "GET", ts.url+"/v1/collections/default/search/explain?query_id=ukbench00001&id=ukbench00002", "", nil)
		if r.status != 200 || r.header.Get("Content-Type") != "image/png" {
			t.Fatalf("%d %s %.200s", r.status, r.header.Get("Content-Type"), r.body)
		}
		img, err := png.Decode(bytes.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		thumb := do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00002/thumbnail", "", nil)
		cfg, _, err := image.DecodeConfig(bytes.NewReader(thumb.body))
		if err != nil || img.Bounds().Dx() != cfg.Width || img.Bounds().Dy() != cfg.Height {
			t.Errorf("overlay %v, thumbnail %dx%d (%v)", img.Bounds(), cfg.Width, cfg.Height, err)
		}
		if r.header.Get("X-Match-Score") == "" {
			t.Error("no X-Match-Score")
		}
	})
	// The grid covers the whole thumbnail, not only the model's centre square.
	t.Run("covers the whole photo", func(t *testing.T) {
		r := do(t, "GET", ts.url+"/v1/collections/default/search/explain?format=json&query_id=ukbench00001&id=ukbench00002", "", nil)
		var ex explainJSON
		r.json(t, &ex)
		thumb := do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00002/thumbnail", "", nil)
		cfg, _, err := image.DecodeConfig(bytes.NewReader(thumb.body))
		if err != nil || r.status != 200 {
			t.Fatalf("%d %s (%v)", r.status, r.body, err)
		}
		if c := ex.Crop; c[0] > 0 || c[1] > 0 || c[0]+c[2] < cfg.Width || c[1]+c[3] < cfg.Height {
			t.Errorf("grid covers %v of a %dx%d thumbnail, want all of it", c, cfg.Width, cfg.Height)
		}
	})
	// The query is the left half of a photo: the heat over the result (the whole photo) must be
	// higher on its left side than on its right.
	t.Run("uploaded crop lights up its region", func(t *testing.T) {
		full := photo(t, ukName(3))
		src, _, err := image.Decode(bytes.NewReader(full))
		if err != nil {
			t.Fatal(err)
		}
		b := src.Bounds()
		left := image.NewRGBA(image.Rect(0, 0, b.Dx()/2, b.Dy()))
		for y := range b.Dy() {
			for x := range b.Dx() / 2 {
				left.Set(x, y, src.At(b.Min.X+x, b.Min.Y+y))
			}
		}
		var buf bytes.Buffer
		png.Encode(&buf, left)
		body, ct := multipartBody(t, part{"image", "left.png", buf.Bytes()}, part{"id", "", []byte("ukbench00003")}, part{"format", "", []byte("json")})
		r := do(t, "POST", ts.url+"/v1/collections/default/search/explain", ct, body)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var ex explainJSON
		r.json(t, &ex)
		if ex.Rows != 7 || ex.Cols != 7 || len(ex.Grid) != 7 || ex.Max <= ex.Min {
			t.Fatalf("grid %+v", ex)
		}
		var l, rt float32
		for _, row := range ex.Grid {
			for c, v := range row {
				if c < 3 {
					l += v
				} else if c > 3 {
					rt += v
				}
			}
		}
		if l <= rt {
			t.Errorf("left-half query: heat left %.3f <= right %.3f\n%v", l, rt, ex.Grid)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			q      string
			status int
		}{
			{"?id=ukbench00001", 400},
			{"?query_id=ukbench00001", 400},
			{"?query_id=nope&id=ukbench00001", 404},
			{"?query_id=ukbench00001&id=nope", 404},
			{"?query_id=ukbench00001&id=ukbench00002&format=gif", 400},
			{"?query_id=ukbench00001&id=ukbench00002&alpha=3", 400},
		} {
			r := do(t, "GET", ts.url+"/v1/collections/default/search/explain"+tc.q, "", nil)
			if r.status != tc.status {
				t.Errorf("%s: %d %s, want %d", tc.q, r.status, r.body, tc.status)
			} else {
				r.errorCode(t)
			}
		}
	})
}

// BenchmarkSimilarDiversify compares similar (k=24) with and without diversification on 40 UKBench
// photos, where most results have a group-mate above the near-duplicate cosine gate (the pixel check
// runs): go test ./api -run '^$' -bench SimilarDiversify.
func BenchmarkSimilarDiversify(b *testing.B) {
	ts := newTestServer(b, nil)
	for i := 0; i < 40; i++ {
		ts.addPhoto(b, ukName(i), `{}`)
	}
	for _, div := range []string{"false", "true"} {
		b.Run("diversify="+div, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				r := do(b, "GET", fmt.Sprintf("%s/v1/collections/default/items/%s/similar?k=24&diversify=%s", ts.url, ukName(i % 40)[:12], div), "", nil)
				if r.status != 200 {
					b.Fatal(r.status, string(r.body))
				}
			}
		})
	}
}

// Without intel.diversify_pixels (the default) diversity goes by cosine alone: close copies collapse,
// and the page still fills with other items.
func TestDiversifyByCosine(t *testing.T) {
	ts := newTestServer(t, nil)
	for i := 0; i < 12; i++ {
		ts.addPhoto(t, ukName(i), `{}`)
	}
	orig := photo(t, ukName(1))
	for i, scale := range []float64{0.8, 0.9, 1.1} {
		if r := ts.addBytes(t, fmt.Sprintf("copy-%d", i), reencode(t, orig, scale, 85), "", ""); r.status != 201 {
			t.Fatal(r.status, string(r.body))
		}
	}
	get := func(q string) []string {
		r := do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00000/similar?k=6"+q, "", nil)
		var sr searchResponse
		r.json(t, &sr)
		return ids(sr.Results)
	}
	count := func(list []string) int {
		n := 0
		for _, id := range list {
			if id == "ukbench00001" || strings.HasPrefix(id, "copy-") {
				n++
			}
		}
		return n
	}
	plain, div := get("&diversify=false"), get("")
	if count(plain) != 4 || count(div) >= 4 || len(div) != 6 {
		t.Fatalf("plain %v (copies %d), diversified %v (copies %d)", plain, count(plain), div, count(div))
	}
}
