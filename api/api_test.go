package api

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// seed stores two UKBench objects (4 photos each) with metadata.
func seed(t *testing.T, ts *testServer) {
	t.Helper()
	for i := 0; i < 8; i++ {
		ts.addPhoto(t, ukName(i), fmt.Sprintf(`{"category":"object-%d","price":%d,"tags":["t%d"]}`, i/4, 10*(i+1), i%2))
	}
}

func ids(rs []resultJSON) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func TestUploadThenSearchReencodedCopy(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts)
	for _, tc := range []struct {
		name  string
		scale float64
		q     int
	}{
		{"same size q60", 1, 60},
		{"half size q60", 0.5, 60},
		{"larger q85", 1.3, 85},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, sr := ts.searchImage(t, reencode(t, photo(t, ukName(5)), tc.scale, tc.q))
			if r.status != http.StatusOK {
				t.Fatalf("search: %d %s", r.status, r.body)
			}
			if len(sr.Results) == 0 || sr.Results[0].ID != "ukbench00005" {
				t.Fatalf("first result %v, want ukbench00005", ids(sr.Results))
			}
			if sr.Results[0].Score < 0.85 {
				t.Errorf("score of the re-encoded copy %.3f < 0.85", sr.Results[0].Score)
			}
			for _, k := range []string{"decode", "preprocess", "inference", "search", "total"} {
				if _, ok := sr.TimingsMS[k]; !ok {
					t.Errorf("timings_ms lacks %q: %v", k, sr.TimingsMS)
				}
			}
			if sr.Model == "" || !strings.HasSuffix(sr.Results[0].ThumbnailURL, "/items/ukbench00005/thumbnail") {
				t.Errorf("model %q, thumbnail_url %q", sr.Model, sr.Results[0].ThumbnailURL)
			}
		})
	}
}

// similar-by-id answers from the stored vector: it must rank like a search with the item's own
// photo, minus the item itself.
func TestSimilarAgreesWithSearchByOwnImage(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts)
	_, bySearch := ts.searchImage(t, photo(t, ukName(2)), part{"k", "", []byte("5")})
	r := do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00002/similar?k=4", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("similar: %d %s", r.status, r.body)
	}
	var bySimilar searchResponse
	r.json(t, &bySimilar)
	want := ids(bySearch.Results)
	if len(want) == 0 || want[0] != "ukbench00002" {
		t.Fatalf("search by own image: first %v", want)
	}
	if got := ids(bySimilar.Results); strings.Join(got, ",") != strings.Join(want[1:], ",") {
		t.Fatalf("similar %v != search-by-image minus itself %v", got, want[1:])
	}
	// Group-mates of the same object come first.
	for _, id := range ids(bySimilar.Results)[:3] {
		if id > "ukbench00003" {
			t.Errorf("similar to ukbench00002 ranks %s (another object) in the top 3: %v", id, ids(bySimilar.Results))
		}
	}
}

func TestSearchVariants(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts)
	img := photo(t, ukName(1))
	t.Run("json base64", func(t *testing.T) {
		body := fmt.Sprintf(`{"image":%q,"k":3}`, base64.StdEncoding.EncodeToString(img))
		r := do(t, "POST", ts.url+"/v1/collections/default/search", "application/json", strings.NewReader(body))
		var sr searchResponse
		r.json(t, &sr)
		if r.status != 200 || len(sr.Results) != 3 || sr.Results[0].ID != "ukbench00001" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("raw image body", func(t *testing.T) {
		r := do(t, "POST", ts.url+"/v1/collections/default/search?k=2", "image/jpeg", bytes.NewReader(img))
		var sr searchResponse
		r.json(t, &sr)
		if r.status != 200 || len(sr.Results) != 2 || sr.Results[0].ID != "ukbench00001" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("by id", func(t *testing.T) {
		r := do(t, "POST", ts.url+"/v1/collections/default/search", "application/json", strings.NewReader(`{"id":"ukbench00004","k":3}`))
		var sr searchResponse
		r.json(t, &sr)
		if r.status != 200 || len(sr.Results) != 3 || sr.Results[0].ID == "ukbench00004" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("crop", func(t *testing.T) {
		r, sr := ts.searchImage(t, img, part{"crop", "", []byte("100,80,400,300")}, part{"k", "", []byte("3")})
		if r.status != 200 || len(sr.Results) != 3 || sr.Results[0].ID != "ukbench00001" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("filter json", func(t *testing.T) {
		r, sr := ts.searchImage(t, img, part{"filter", "", []byte(`{"category":"object-1"}`)})
		if r.status != 200 || len(sr.Results) != 4 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		for _, res := range sr.Results {
			if !strings.Contains(string(res.Metadata), "object-1") {
				t.Fatalf("filter let through %s %s", res.ID, res.Metadata)
			}
		}
	})
	t.Run("filter expression and min_score", func(t *testing.T) {
		r, sr := ts.searchImage(t, img, part{"filter", "", []byte(`price >= 30 AND price <= 60`)}, part{"min_score", "", []byte("-1")})
		if r.status != 200 || len(sr.Results) != 4 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("pagination", func(t *testing.T) {
		seen := map[string]bool{}
		cursor := ""
		for page := 0; page < 4; page++ {
			extra := []part{{"k", "", []byte("3")}}
			if cursor != "" {
				extra = append(extra, part{"cursor", "", []byte(cursor)})
			}
			r, sr := ts.searchImage(t, img, extra...)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			for _, res := range sr.Results {
				if seen[res.ID] {
					t.Fatalf("page %d repeats %s", page, res.ID)
				}
				seen[res.ID] = true
			}
			cursor = sr.NextCursor
			if cursor == "" {
				break
			}
		}
		if len(seen) != 8 {
			t.Fatalf("pages covered %d items, want 8", len(seen))
		}
	})
}

func pngHeader(w, h uint32) []byte {
	var buf bytes.Buffer
	buf.Write([]byte("\x89PNG\r\n\x1a\n"))
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&buf, binary.BigEndian, uint32(13))
	buf.Write(chunk)
	binary.Write(&buf, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return buf.Bytes()
}

func tinyPNG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 1, 1))
	img.Set(0, 0, color.RGBA{200, 10, 10, 255})
	var buf bytes.Buffer
	png.Encode(&buf, img)
	return buf.Bytes()
}

// Every documented error path returns its status and the one JSON error shape, and the server keeps
// serving afterwards.
func TestErrorPaths(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts)
	if _, err := ts.db.CreateCollection("other-model", index.CollectionConfig{Fingerprint: "othermodel-000000000000", Dims: 1280}); err != nil {
		t.Fatal(err)
	}
	jpg := photo(t, ukName(0))
	mp := func(parts ...part) func() (string, []byte) {
		return func() (string, []byte) {
			body, ct := multipartBody(t, parts...)
			var buf bytes.Buffer
			buf.ReadFrom(body)
			return ct, buf.Bytes()
		}
	}
	raw := func(ct string, b []byte) func() (string, []byte) { return func() (string, []byte) { return ct, b } }
	search := "/v1/collections/default/search"
	items := "/v1/collections/default/items"
	cases := []struct {
		name, method, path string
		body               func() (string, []byte)
		status             int
		code               string
	}{
		{"unknown collection", "POST", "/v1/collections/nope/search", mp(part{"image", "a.jpg", jpg}), 404, "collection_not_found"},
		{"unknown item", "GET", items + "/nope", nil, 404, "item_not_found"},
		{"unknown item similar", "GET", items + "/nope/similar", nil, 404, "item_not_found"},
		{"unknown item thumbnail", "GET", items + "/nope/thumbnail", nil, 404, "item_not_found"},
		{"delete unknown item", "DELETE", items + "/nope", nil, 404, "item_not_found"},
		{"unknown route", "GET", "/v1/nothing", nil, 404, "not_found"},
		{"no query", "POST", search, mp(part{"k", "", []byte("3")}), 400, "bad_request"},
		{"two queries", "POST", search, raw("application/json", []byte(`{"id":"ukbench00000","vector":[1]}`)), 400, "bad_request"},
		{"garbage image", "POST", search, mp(part{"image", "a.jpg", []byte("this is not an image at all")}), 415, "not_an_image"},
		{"empty image", "POST", search, mp(part{"image", "a.jpg", []byte{}}), 400, "empty_image"},
		{"truncated jpeg", "POST", search, mp(part{"image", "a.jpg", jpg[:len(jpg)/3]}), 422, "corrupt_image"},
		{"pixel bomb png header", "POST", search, mp(part{"image", "bomb.png", pngHeader(30000, 30000)}), 413, "image_too_large"},
		{"wrong content type", "POST", search, raw("text/plain", []byte("hello")), 415, "unsupported_content_type"},
		{"no content type", "POST", search, raw("", []byte("hello")), 415, "unsupported_content_type"},
		{"truncated multipart", "POST", search, func() (string, []byte) {
			ct, b := mp(part{"image", "a.jpg", jpg})()
			return ct, b[:len(b)/2]
		}, 400, "bad_request"},
		{"malformed json", "POST", search, raw("application/json", []byte(`{"k":`)), 400, "bad_request"},
		{"unknown json field", "POST", search, raw("application/json", []byte(`{"id":"x","kk":3}`)), 400, "bad_request"},
		{"bad base64", "POST", search, raw("application/json", []byte(`{"image":"@@@"}`)), 400, "bad_request"},
		{"k zero", "POST", search, raw("application/json", []byte(`{"id":"ukbench00000","k":0}`)), 400, "invalid_query"},
		{"k negative", "POST", search, raw("application/json", []byte(`{"id":"ukbench00000","k":-1}`)), 400, "invalid_query"},
		{"k too large", "POST", search, raw("application/json", []byte(`{"id":"ukbench00000","k":5000}`)), 400, "invalid_query"},
		{"k not a number", "POST", search, mp(part{"image", "a.jpg", jpg}, part{"k", "", []byte("ten")}), 400, "invalid_query"},
		{"bad filter", "POST", search, raw("application/json", []byte(`{"id":"ukbench00000","filter":"price <<< 3"}`)), 400, "invalid_filter"},
		{"bad cursor", "POST", search, raw("application/json", []byte(`{"id":"ukbench00000","cursor":"forged"}`)), 400, "invalid_query"},
		{"filter on unknown field", "POST", search, raw("application/json", []byte(`{"id":"ukbench00000","filter":"colour = \"red\""}`)), 400, "unknown_field"},
		{"crop outside image", "POST", search, mp(part{"image", "a.jpg", jpg}, part{"crop", "", []byte("600,400,500,500")}), 400, "bad_crop"},
		{"crop malformed", "POST", search, mp(part{"image", "a.jpg", jpg}, part{"crop", "", []byte("1,2,3")}), 400, "bad_crop"},
		{"vector wrong dims", "POST", search, raw("application/json", []byte(`{"vector":[0.1,0.2]}`)), 400, "dimension_mismatch"},
		{"add without image", "POST", items, mp(part{"id", "", []byte("x")}), 400, "bad_request"},
		{"add garbage", "POST", items, mp(part{"image", "x.jpg", jpg[:300]}), 422, "corrupt_image"},
		{"metadata not an object", "POST", items, mp(part{"image", "x.jpg", jpg}, part{"metadata", "", []byte(`[1,2]`)}), 400, "invalid_metadata"},
		{"metadata too large", "POST", items, mp(part{"image", "x.jpg", jpg}, part{"metadata", "", []byte(`{"a":"` + strings.Repeat("x", 70<<10) + `"}`)}), 413, "metadata_too_large"},
		{"id too long", "POST", items, mp(part{"image", "x.jpg", jpg}, part{"id", "", []byte(strings.Repeat("x", 300))}), 400, "invalid_id"},
		{"id control chars", "POST", items, mp(part{"image", "x.jpg", jpg}, part{"id", "", []byte("a\x01b")}), 400, "invalid_id"},
		{"fingerprint mismatch", "POST", "/v1/collections/other-model/items", mp(part{"image", "x.jpg", jpg}), 409, "fingerprint_mismatch"},
		{"create existing collection", "POST", "/v1/collections", raw("application/json", []byte(`{"name":"default"}`)), 409, "already_exists"},
		{"create bad name", "POST", "/v1/collections", raw("application/json", []byte(`{"name":"../etc"}`)), 400, "invalid_name"},
		{"list bad limit", "GET", items + "?limit=0", nil, 400, "invalid_query"},
		{"batch empty", "POST", items + ":batch", raw("application/x-ndjson", []byte("\n\n")), 400, "bad_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ct string
			var body []byte
			if tc.body != nil {
				ct, body = tc.body()
			}
			r := do(t, tc.method, ts.url+tc.path, ct, bytes.NewReader(body))
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if code := r.errorCode(t); code != tc.code {
				t.Fatalf("code %q, want %q: %s", code, tc.code, r.body)
			}
		})
	}
	// A body over the limit is refused from its Content-Length, before it is read: the raw
	// connection sends only the headers and a few bytes.
	t.Run("body too large", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /v1/collections/default/search HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n\xff\xd8", 5<<20)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		r := response{status: resp.StatusCode, header: resp.Header, body: b}
		if r.status != 413 || r.errorCode(t) != "body_too_large" {
			t.Fatalf("%d %s", r.status, b)
		}
	})
	// A 1×1 image is a valid (if useless) query: answered, not an error.
	if r, _ := ts.searchImage(t, tinyPNG()); r.status != http.StatusOK {
		t.Errorf("1x1 image: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", ts.url+"/healthz", "", nil); r.status != 200 {
		t.Fatalf("server unhealthy after the error paths: %d", r.status)
	}
	if r, sr := ts.searchImage(t, jpg); r.status != 200 || sr.Results[0].ID != "ukbench00000" {
		t.Fatalf("server stopped answering correctly after the error paths: %d %s", r.status, r.body)
	}
}

func TestItemsCRUDAndBatch(t *testing.T) {
	ts := newTestServer(t, nil)
	// NDJSON batch: two good items and one broken one; the good ones land.
	var nd bytes.Buffer
	for _, i := range []int{0, 1} {
		line, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("item-%d", i), "image": base64.StdEncoding.EncodeToString(photo(t, ukName(i*4))), "metadata": map[string]any{"brand": "b"}})
		nd.Write(append(line, '\n'))
	}
	nd.WriteString(`{"id":"broken","image":"bm90IGFuIGltYWdl"}` + "\n")
	r := do(t, "POST", ts.url+"/v1/collections/default/items:batch", "application/x-ndjson", &nd)
	var batch struct {
		Stored, Failed int
		Results        []struct {
			ID     string
			Status int
		}
	}
	r.json(t, &batch)
	if r.status != 200 || batch.Stored != 2 || batch.Failed != 1 || batch.Results[2].Status != 415 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	// Multipart batch with ids and metadata in order.
	body, ct := multipartBody(t, part{"image", "a.jpg", photo(t, ukName(8))}, part{"image", "b.jpg", photo(t, ukName(12))},
		part{"id", "", []byte("mp-a")}, part{"id", "", []byte("mp-b")}, part{"metadata", "", []byte(`{"n":1}`)}, part{"metadata", "", []byte(`{"n":2}`)})
	if r := do(t, "POST", ts.url+"/v1/collections/default/items:batch", ct, body); r.status != 200 || !strings.Contains(string(r.body), `"stored":2`) {
		t.Fatalf("multipart batch: %d %s", r.status, r.body)
	}
	// Get, thumbnail, list, delete.
	r = do(t, "GET", ts.url+"/v1/collections/default/items/mp-b", "", nil)
	var detail itemDetailJSON
	r.json(t, &detail)
	if r.status != 200 || !strings.Contains(string(r.body), `"n":2`) || len(detail.Labels) != 5 || detail.Labels[0].Prob <= 0 {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	r = do(t, "GET", ts.url+"/v1/collections/default/items/mp-b/thumbnail", "", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("thumbnail: %d %s", r.status, r.header)
	}
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(r.body)); err != nil || max(cfg.Width, cfg.Height) > 256 {
		t.Fatalf("thumbnail is not a <=256px image: %v %+v", err, cfg)
	}
	var listed []string
	cursor := ""
	for {
		r = do(t, "GET", ts.url+"/v1/collections/default/items?limit=3&cursor="+cursor, "", nil)
		var page struct {
			Items      []itemJSON `json:"items"`
			NextCursor string     `json:"next_cursor"`
		}
		r.json(t, &page)
		for _, it := range page.Items {
			listed = append(listed, it.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if strings.Join(listed, ",") != "item-0,item-1,mp-a,mp-b" {
		t.Fatalf("listed %v", listed)
	}
	if r := do(t, "DELETE", ts.url+"/v1/collections/default/items/mp-a", "", nil); r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", ts.url+"/v1/collections/default/items/mp-a", "", nil); r.status != 404 {
		t.Fatalf("deleted item still there: %d", r.status)
	}
	// Re-adding the same photo under another id reports the near-duplicate.
	body, ct = multipartBody(t, part{"image", "again.jpg", photo(t, ukName(12))}, part{"id", "", []byte("copy-of-b")})
	r = do(t, "POST", ts.url+"/v1/collections/default/items", ct, body)
	if r.status != 201 || !strings.Contains(string(r.body), `"near_duplicate_of":{"id":"mp-b"`) {
		t.Fatalf("near-duplicate not reported: %d %s", r.status, r.body)
	}
}

func TestCollectionsAndFields(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts)
	r := do(t, "POST", ts.url+"/v1/collections", "application/json", strings.NewReader(`{"name":"shoes","ef_search":50}`))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r = do(t, "GET", ts.url+"/v1/collections", "", nil)
	var list struct{ Collections []collectionJSON }
	r.json(t, &list)
	if len(list.Collections) != 2 || list.Collections[0].Name != "default" || list.Collections[0].Count != 8 || list.Collections[1].EfSearch != 50 {
		t.Fatalf("collections: %s", r.body)
	}
	r = do(t, "GET", ts.url+"/v1/collections/default/fields", "", nil)
	var fields struct{ Fields []fieldJSON }
	r.json(t, &fields)
	byName := map[string]fieldJSON{}
	for _, f := range fields.Fields {
		byName[f.Name] = f
	}
	if f := byName["price"]; f.Type != "number" || *f.Min != 10 || *f.Max != 80 {
		t.Fatalf("price field: %+v", f)
	}
	if f := byName["category"]; f.Type != "keyword" || len(f.Values) != 2 {
		t.Fatalf("category field: %+v", f)
	}
	if r := do(t, "DELETE", ts.url+"/v1/collections/shoes?confirm=shoes", "", nil); r.status != 200 {
		t.Fatalf("drop: %d %s", r.status, r.body)
	}
}

func TestAuthScopes(t *testing.T) {
	const readKey, writeKey = "read-key-0123456789", "write-key-0123456789"
	ts := newTestServer(t, func(c *config.Config) { c.Auth.Keys = []string{"read:" + readKey, "write:" + writeKey} })
	jpg := photo(t, ukName(0))
	add := func(key string) int {
		body, ct := multipartBody(t, part{"image", "a.jpg", jpg})
		var h []string
		if key != "" {
			h = []string{"Authorization", "Bearer " + key}
		}
		return do(t, "POST", ts.url+"/v1/collections/default/items", ct, body, h...).status
	}
	if s := add(""); s != 401 {
		t.Errorf("no key: %d, want 401", s)
	}
	if s := add("wrong-key-0123456789"); s != 401 {
		t.Errorf("wrong key: %d, want 401", s)
	}
	if s := add(readKey); s != 403 {
		t.Errorf("read key on write: %d, want 403", s)
	}
	if s := add(writeKey); s != 201 {
		t.Errorf("write key: %d, want 201", s)
	}
	if r := do(t, "GET", ts.url+"/v1/collections", "", nil, "X-API-Key", readKey); r.status != 200 {
		t.Errorf("read key on read: %d", r.status)
	}
	// The web UI logs in once with /?key=KEY: the key becomes an HttpOnly cookie and leaves the URL.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(ts.url + "/?key=" + readKey)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookie := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") {
		t.Fatalf("key login: %d %v", resp.StatusCode, resp.Header)
	}
	if r := do(t, "GET", ts.url+"/v1/collections", "", nil, "Cookie", strings.Split(cookie, ";")[0]); r.status != 200 {
		t.Errorf("cookie key on read: %d", r.status)
	}
	if resp, err := noRedirect.Get(ts.url + "/?key=not-a-valid-key-000"); err != nil || resp.StatusCode != 401 {
		t.Errorf("bad key login must be refused: %v %v", err, resp.StatusCode)
	}
	for _, open := range []string{"/healthz", "/readyz"} {
		if r := do(t, "GET", ts.url+open, "", nil); r.status != 200 {
			t.Errorf("%s needs no key, got %d", open, r.status)
		}
	}
}

// With every inference slot taken and no queue, an image request is refused at once with 429 and
// Retry-After instead of waiting; requests that need no inference still answer.
func TestOverloadRejectsWith429(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) {
		c.Server.MaxInflightEmbeds, c.Server.MaxQueuedEmbeds = 1, 0
	})
	seed(t, ts)
	release, err := ts.admit.acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := ts.searchImage(t, photo(t, ukName(0)))
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || r.errorCode(t) != "overloaded" {
		t.Fatalf("saturated: %d %v %s", r.status, r.header, r.body)
	}
	if r := do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00000/similar", "", nil); r.status != 200 {
		t.Fatalf("similar must not need an inference slot: %d", r.status)
	}
	release()
	if r, _ := ts.searchImage(t, photo(t, ukName(0))); r.status != 200 {
		t.Fatalf("after release: %d %s", r.status, r.body)
	}
}

// Concurrent searches and ingests against one server (run under -race by make test).
func TestConcurrentSearchAndIngest(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				if w%2 == 0 {
					body, ct := multipartBody(t, part{"image", "x.jpg", photo(t, ukName(8+w*4+i))})
					if r := do(t, "POST", ts.url+"/v1/collections/default/items", ct, body); r.status != 201 {
						errs <- fmt.Sprintf("add: %d %s", r.status, r.body)
					}
				} else {
					r := do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00001/similar?k=3", "", nil)
					if r.status != 200 {
						errs <- fmt.Sprintf("similar: %d %s", r.status, r.body)
					}
					if r, _ := ts.searchImage(t, photo(t, ukName(i))); r.status != 200 && r.status != 429 {
						errs <- fmt.Sprintf("search: %d %s", r.status, r.body)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
