package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

func postJSON(t testing.TB, url, body string) response {
	t.Helper()
	return do(t, "POST", url, "application/json", strings.NewReader(body))
}

// Defect 12.3: tags:apply wrote metadata back through float64, so an EAN beyond 2^53 and a
// 30-digit number changed although tagging never touched them.
func TestTagsApplyKeepsUntouchedFieldsExact(t *testing.T) {
	ts := newTestServer(t, nil)
	for i := 0; i < 8; i++ {
		ts.addPhoto(t, ukName(i), fmt.Sprintf(`{"category":"object-%d"}`, i/4))
	}
	const curated = `{"ean":9007199254740993,"big":123456789012345678901234567890,"price":59.90,"note":"<b>&amp;</b>"}`
	body, ct := multipartBody(t, part{"image", "x.jpg", reencode(t, photo(t, ukName(1)), 0.7, 80)}, part{"id", "", []byte("curated")},
		part{"metadata", "", []byte(curated)}, part{"on_duplicate", "", []byte("allow")})
	if r := do(t, "POST", ts.url+"/v1/collections/default/items", ct, body); r.status != http.StatusCreated {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	r := postJSON(t, ts.url+"/v1/collections/default/tags:apply", `{"min_confidence":0.3}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"id":"curated","field":"category"`) {
		t.Fatalf("tags:apply: %d %s", r.status, r.body)
	}
	// The response: the numbers are what the client sent.
	var it itemDetailJSON
	do(t, "GET", ts.url+"/v1/collections/default/items/curated", "", nil).json(t, &it)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(it.Metadata, &fields); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"ean": "9007199254740993", "big": "123456789012345678901234567890", "price": "59.90"} {
		if got := string(fields[k]); got != want {
			t.Errorf("%s = %s after tagging, want %s", k, got, want)
		}
	}
	if string(fields["category"]) != `"object-0"` {
		t.Errorf("category = %s, want the suggestion object-0", fields["category"])
	}
	// The store: every untouched field keeps its bytes (the HTTP encoder escapes '<' in responses).
	col, _ := ts.db.Collection("default")
	stored, err := col.Get("curated")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{`"ean":9007199254740993`, `"big":123456789012345678901234567890`, `"price":59.90`, `"note":"<b>&amp;</b>"`} {
		if !strings.Contains(string(stored.Metadata), f) {
			t.Errorf("stored metadata %s lost %s", stored.Metadata, f)
		}
	}
}

// Defect 12.4: clusters overlapped (an item in two clusters: keeping it in one deleted it from the
// other). A chain a~c~b with a≁b, straight in the server's collection: only {a, c} is reported.
func TestDuplicateClustersAreDisjoint(t *testing.T) {
	ts := newTestServer(t, nil)
	col, err := ts.db.Collection("default")
	if err != nil {
		t.Fatal(err)
	}
	dims := ts.eng.Info().Dims
	at := func(deg float64) []float32 {
		v := make([]float32, dims)
		v[0], v[1] = float32(math.Cos(deg*math.Pi/180)), float32(math.Sin(deg*math.Pi/180))
		return v
	}
	step := math.Acos(0.85) * 180 / math.Pi // cosine 0.85 per step: a~c, c~b, a≁b (0.45)
	z := make([]float32, dims)
	z[2] = 1
	if err := col.Upsert(t.Context(), index.Item{ID: "a", Vector: at(0)}, index.Item{ID: "c", Vector: at(step)},
		index.Item{ID: "b", Vector: at(2 * step)}, index.Item{ID: "z", Vector: z}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for cursor, n := "", 0; ; n++ {
		var p dupPageJSON
		r := do(t, "GET", ts.url+"/v1/collections/default/duplicates?tier=similar&limit=1&cursor="+cursor, "", nil)
		r.json(t, &p)
		if p.OneClick {
			t.Error("the similar tier is offered for one-click resolution")
		}
		for _, cl := range p.Clusters {
			for _, m := range cl.Items {
				if slices.Contains(seen, m.ID) {
					t.Errorf("%s is in two clusters", m.ID)
				}
				seen = append(seen, m.ID)
			}
		}
		if cursor = p.NextCursor; cursor == "" || n > 10 {
			break
		}
	}
	if strings.Join(seen, ",") != "a,c" {
		t.Fatalf("clusters hold %v, want a,c", seen)
	}
}

// TestResolveTrashRestore resolves a near-duplicate cluster into the trash and restores the item:
// vector, metadata, thumbnail come back and it is searchable again. Ids with '/' and ':' travel in
// JSON bodies and never reach another route.
func TestResolveTrashRestore(t *testing.T) {
	ts := newTestServer(t, nil)
	for i := 0; i < 8; i++ {
		ts.addPhoto(t, ukName(i), `{}`)
	}
	const odd = "odd/id:restore"
	half := reencode(t, photo(t, ukName(0)), 0.5, 75)
	if r := ts.addBytes(t, "zz-half", half, `{"ean":9007199254740993}`, ""); r.status != 201 {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	if r := ts.addBytes(t, odd, photo(t, ukName(20)), `{"k":"v"}`, ""); r.status != 201 {
		t.Fatalf("add %s: %d %s", odd, r.status, r.body)
	}
	col, _ := ts.db.Collection("default")
	before, err := col.Get("zz-half")
	if err != nil {
		t.Fatal(err)
	}
	resolve := func(body string) response {
		return postJSON(t, ts.url+"/v1/collections/default/duplicates:resolve", body)
	}
	for _, tc := range []struct {
		body, code string
		status     int
	}{
		{`{"keep":"ukbench00000","tier":"similar"}`, "ids_required", 400},
		{`{"keep":"ukbench00000","tier":"near","delete":["ukbench00000"]}`, "keep_listed", 400},
		{`{"keep":"nope","tier":"near"}`, "not_found", 404},
		{`{"keep":"ukbench00005","tier":"near"}`, "no_cluster", 409},
		{`{"keep":"ukbench00000","tier":"fuzzy"}`, "invalid_tier", 400},
		{`{"tier":"near"}`, "bad_request", 400},
	} {
		if r := resolve(tc.body); r.status != tc.status || r.errorCode(t) != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.body, r.status, r.body, tc.status, tc.code)
		}
	}
	var res struct {
		Trashed []string `json:"trashed"`
		DryRun  bool     `json:"dry_run"`
	}
	r := resolve(`{"keep":"ukbench00000","tier":"near","dry_run":true}`)
	if r.json(t, &res); r.status != 200 || !res.DryRun || strings.Join(res.Trashed, ",") != "zz-half" {
		t.Fatalf("dry run: %d %s", r.status, r.body)
	}
	if r := resolve(`{"keep":"ukbench00000","tier":"near"}`); r.status != 200 || !strings.Contains(string(r.body), `"trashed":["zz-half"]`) {
		t.Fatalf("resolve: %d %s", r.status, r.body)
	}
	if r := postJSON(t, ts.url+"/v1/collections/default/items:trash", fmt.Sprintf(`{"ids":[%q,"never-was"]}`, odd)); r.status != 200 ||
		!strings.Contains(string(r.body), `"trashed":["odd/id:restore"]`) {
		t.Fatalf("items:trash: %d %s", r.status, r.body)
	}
	for _, id := range []string{"zz-half", url.PathEscape(odd)} {
		if r := do(t, "GET", ts.url+"/v1/collections/default/items/"+id, "", nil); r.status != 404 {
			t.Errorf("trashed %s answers %d", id, r.status)
		}
	}
	var trash struct {
		Items []trashEntryJSON `json:"items"`
	}
	do(t, "GET", ts.url+"/v1/collections/default/trash", "", nil).json(t, &trash)
	if len(trash.Items) != 2 || trash.Items[1].ID != "zz-half" || string(trash.Items[1].Metadata) != `{"ean":9007199254740993}` ||
		!trash.Items[1].PurgeAt.After(trash.Items[1].DeletedAt) {
		t.Fatalf("trash %+v", trash.Items)
	}

	r = postJSON(t, ts.url+"/v1/collections/default/trash:restore", fmt.Sprintf(`{"ids":["zz-half",%q,"nope"]}`, odd))
	if r.status != 200 || !strings.Contains(string(r.body), `"restored":2`) || !strings.Contains(string(r.body), `"status":404`) {
		t.Fatalf("restore: %d %s", r.status, r.body)
	}
	after, err := col.Get("zz-half")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after.Metadata, before.Metadata) || !bytes.Equal(after.Thumbnail, before.Thumbnail) || len(after.Vector) != len(before.Vector) {
		t.Fatalf("restored item differs: %s vs %s", after.Metadata, before.Metadata)
	}
	for i := range after.Vector {
		if math.Abs(float64(after.Vector[i]-before.Vector[i])) > 1e-6 {
			t.Fatalf("restored vector differs at %d", i)
		}
	}
	if th := do(t, "GET", ts.url+"/v1/collections/default/items/zz-half/thumbnail", "", nil); !bytes.Equal(th.body, before.Thumbnail) {
		t.Error("restored thumbnail differs")
	}
	if _, sr := ts.searchImage(t, half, part{"k", "", []byte("1")}); len(sr.Results) != 1 || sr.Results[0].ID != "zz-half" {
		t.Errorf("restored item not found by its photo: %+v", sr.Results)
	}
	if r := do(t, "GET", ts.url+"/v1/collections/default/items/"+url.PathEscape(odd), "", nil); r.status != 200 {
		t.Errorf("restored %s answers %d", odd, r.status)
	}
	if r := postJSON(t, ts.url+"/v1/collections/default/trash:restore", `{"ids":[]}`); r.status != 400 {
		t.Errorf("empty ids: %d", r.status)
	}
}

// Defect 12.10: similar?k=1000 (diversified: 1000 candidates) bypassed admission control. With the
// only slot held, a flood of expensive requests (similar, search by id, search by vector) is
// refused with 429 and Retry-After, while cheap ones still answer.
func TestExpensiveSearchesPassAdmission(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) {
		c.Server.MaxInflightEmbeds, c.Server.MaxQueuedEmbeds = 1, 0
	})
	seed(t, ts)
	col, _ := ts.db.Collection("default")
	vec, _ := col.Vector("ukbench00001")
	vecJSON, _ := json.Marshal(map[string]any{"vector": vec, "k": 500})
	release, err := ts.admit.acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	type req struct{ method, path, body string }
	expensive := []req{
		{"GET", "/items/ukbench00000/similar?k=1000", ""},
		{"GET", "/items/ukbench00000/similar?k=200&diversify=false", ""},
		{"POST", "/search", `{"id":"ukbench00002","k":400}`},
		{"POST", "/search", string(vecJSON)},
	}
	var wg sync.WaitGroup
	statuses := make(chan int, 64)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rq := expensive[w%len(expensive)]
			r := do(t, rq.method, ts.url+"/v1/collections/default"+rq.path, "application/json", strings.NewReader(rq.body))
			if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") == "" {
				t.Errorf("%s: 429 without Retry-After", rq.path)
			}
			statuses <- r.status
		}()
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != http.StatusTooManyRequests {
			t.Errorf("expensive request answered %d while admission was full, want 429", st)
		}
	}
	if r := do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00000/similar?k=10", "", nil); r.status != 200 {
		t.Errorf("cheap similar: %d %s", r.status, r.body)
	}
	release()
	for _, rq := range expensive {
		if r := do(t, rq.method, ts.url+"/v1/collections/default"+rq.path, "application/json", strings.NewReader(rq.body)); r.status != 200 {
			t.Errorf("%s %s after release: %d %s", rq.method, rq.path, r.status, r.body)
		}
	}
}

// hueRotate returns a JPEG copy of data with every pixel's hue turned by deg degrees (the CSS
// hue-rotate matrix: luminance kept, chroma turned), as a catalog's other colour of a product.
func hueRotate(t testing.TB, data []byte, deg float64) []byte {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c, s := math.Cos(deg*math.Pi/180), math.Sin(deg*math.Pi/180)
	m := [9]float64{
		0.213 + c*0.787 - s*0.213, 0.715 - c*0.715 - s*0.715, 0.072 - c*0.072 + s*0.928,
		0.213 - c*0.213 + s*0.143, 0.715 + c*0.285 + s*0.140, 0.072 - c*0.072 - s*0.283,
		0.213 - c*0.213 - s*0.787, 0.715 - c*0.715 + s*0.715, 0.072 + c*0.928 + s*0.072,
	}
	b := img.Bounds()
	out := image.NewRGBA(b)
	clamp := func(v float64) uint8 { return uint8(math.Max(0, math.Min(255, math.Round(v)))) }
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r16, g16, b16, _ := img.At(x, y).RGBA()
			r, g, bl := float64(r16>>8), float64(g16>>8), float64(b16>>8)
			out.SetRGBA(x, y, color.RGBA{clamp(m[0]*r + m[1]*g + m[2]*bl), clamp(m[3]*r + m[4]*g + m[5]*bl), clamp(m[6]*r + m[7]*g + m[8]*bl), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, out, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Defect 12.5: the same product in another colour was reported near_duplicate_of its photo (and
// grouped in the near tier, one click from deletion). A re-encoded, resized copy still is.
func TestColourVariantsAreNotNearDuplicates(t *testing.T) {
	ts := newTestServer(t, nil)
	add := func(id string, img []byte) (dupOf, tier string) {
		t.Helper()
		body, ct := multipartBody(t, part{"image", "x.jpg", img}, part{"id", "", []byte(id)}, part{"on_duplicate", "", []byte("allow")})
		r := do(t, "POST", ts.url+"/v1/collections/default/items", ct, body)
		var res struct {
			Near *struct{ ID, Tier string } `json:"near_duplicate_of"`
		}
		r.json(t, &res)
		if r.status != http.StatusCreated {
			t.Fatalf("add %s: %d %s", id, r.status, r.body)
		}
		if res.Near == nil {
			return "", ""
		}
		return res.Near.ID, res.Near.Tier
	}
	for i := 0; i < 8; i++ {
		orig := photo(t, ukName(4*i))
		id := fmt.Sprintf("p%d", i)
		add(id, orig)
		for _, deg := range []float64{120, 180} {
			if dup, tier := add(fmt.Sprintf("%s-hue%v", id, deg), hueRotate(t, orig, deg)); dup != "" {
				t.Errorf("%s turned %v° is reported a %s duplicate of %s", id, deg, tier, dup)
			}
		}
		if dup, tier := add(id+"-copy", reencode(t, orig, 0.8, 60)); dup != id || (tier != "near" && tier != "exact") {
			t.Errorf("a re-encoded copy of %s: near_duplicate_of %q (%s), want %s", id, dup, tier, id)
		}
	}
}
