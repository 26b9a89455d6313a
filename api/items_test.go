package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/internal/ingest"
)

// addAnswer is the single-item answer with the fields these tests read.
type addAnswer struct {
	Item struct {
		ID       string          `json:"id"`
		Version  uint64          `json:"version"`
		Metadata json.RawMessage `json:"metadata"`
	} `json:"item"`
	Outcome    string `json:"outcome"`
	MergedInto string `json:"merged_into"`
}

type batchAnswer struct {
	Stored, Failed int
	Results        []struct {
		ID      string `json:"id"`
		Status  int    `json:"status"`
		Outcome string `json:"outcome"`
		Item    *struct {
			ID      string `json:"id"`
			Version uint64 `json:"version"`
		} `json:"item"`
		Error *struct{ Code string } `json:"error"`
	}
}

// postItem sends one multipart item: image, then any other fields (id, metadata, if_version).
func (ts *testServer) postItem(t testing.TB, query string, img []byte, fields map[string]string, headers ...string) (response, addAnswer) {
	t.Helper()
	parts := []part{{"image", "image.jpg", img}}
	for k, v := range fields {
		parts = append(parts, part{k, "", []byte(v)})
	}
	body, ct := multipartBody(t, parts...)
	r := do(t, "POST", ts.url+"/v1/collections/default/items"+query, ct, body, headers...)
	var a addAnswer
	if r.status < 300 {
		r.json(t, &a)
	}
	return r, a
}

func (ts *testServer) getItem(t testing.TB, id string) (itemJSON, map[string]any) {
	t.Helper()
	r := do(t, "GET", ts.url+"/v1/collections/default/items/"+id, "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", id, r.status, r.body)
	}
	var it itemJSON
	r.json(t, &it)
	var meta map[string]any
	json.Unmarshal(it.Metadata, &meta)
	if r.header.Get("ETag") != etag(it.Version) || it.Version == 0 {
		t.Errorf("GET %s: ETag %q for version %d", id, r.header.Get("ETag"), it.Version)
	}
	return it, meta
}

func ndjson(t testing.TB, lines ...map[string]any) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	for _, l := range lines {
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(append(b, '\n'))
	}
	return bytes.NewReader(buf.Bytes())
}

// TestItemVersionsAndPreconditions: every items route returns the item's version, and a write
// sent with a stale one (if_version field, JSON or NDJSON, or If-Match) is refused with 409.
func TestItemVersionsAndPreconditions(t *testing.T) {
	ts := newTestServer(t, nil)
	img := reencode(t, photo(t, ukName(0)), 0.5, 80)
	r, a := ts.postItem(t, "", img, map[string]string{"id": "v", "metadata": `{"n":1}`})
	if r.status != http.StatusCreated || a.Outcome != "created" || a.Item.Version == 0 || r.header.Get("ETag") != etag(a.Item.Version) {
		t.Fatalf("add: %d %s (ETag %q)", r.status, r.body, r.header.Get("ETag"))
	}
	v1 := a.Item.Version
	if it, _ := ts.getItem(t, "v"); it.Version != v1 {
		t.Fatalf("GET version %d, add said %d", it.Version, v1)
	}
	var page struct{ Items []itemJSON }
	do(t, "GET", ts.url+"/v1/collections/default/items", "", nil).json(t, &page)
	if len(page.Items) != 1 || page.Items[0].Version != v1 {
		t.Fatalf("list: %+v", page.Items)
	}

	r, a = ts.postItem(t, "", img, map[string]string{"id": "v", "metadata": `{"n":2}`, "if_version": strconv.FormatUint(v1, 10)})
	if r.status != http.StatusCreated || a.Outcome != "replaced" || a.Item.Version <= v1 {
		t.Fatalf("write with the current version: %d %s", r.status, r.body)
	}
	v2 := a.Item.Version
	stale := []struct {
		name string
		send func() response
	}{
		{"multipart if_version", func() response {
			r, _ := ts.postItem(t, "", img, map[string]string{"id": "v", "metadata": `{"n":3}`, "if_version": strconv.FormatUint(v1, 10)})
			return r
		}},
		{"JSON if_version", func() response {
			body, _ := json.Marshal(map[string]any{"id": "v", "image": base64.StdEncoding.EncodeToString(img), "metadata": map[string]any{"n": 3}, "if_version": v1})
			return do(t, "POST", ts.url+"/v1/collections/default/items", "application/json", bytes.NewReader(body))
		}},
		{"If-Match", func() response {
			r, _ := ts.postItem(t, "", img, map[string]string{"id": "v", "metadata": `{"n":3}`}, "If-Match", etag(v1))
			return r
		}},
		{"If-Match on an absent item", func() response {
			r, _ := ts.postItem(t, "", img, map[string]string{"id": "absent"}, "If-Match", etag(v2))
			return r
		}},
	}
	for _, tc := range stale {
		t.Run("stale "+tc.name, func(t *testing.T) {
			r := tc.send()
			if r.status != http.StatusConflict || r.errorCode(t) != "version_conflict" {
				t.Fatalf("%d %s, want 409 version_conflict", r.status, r.body)
			}
			if it, meta := ts.getItem(t, "v"); it.Version != v2 || meta["n"] != 2.0 {
				t.Fatalf("a refused write changed the item: version %d, metadata %v", it.Version, meta)
			}
		})
	}
	r, a = ts.postItem(t, "", img, map[string]string{"id": "v", "metadata": `{"n":4}`}, "If-Match", etag(v2))
	if r.status != http.StatusCreated || a.Item.Version <= v2 {
		t.Fatalf("If-Match with the current version: %d %s", r.status, r.body)
	}
	v3 := a.Item.Version
	for name, fields := range map[string]map[string]string{
		"zero":         {"id": "v", "if_version": "0"},
		"not a number": {"id": "v", "if_version": "abc"},
	} {
		if r, _ := ts.postItem(t, "", img, fields); r.status != http.StatusBadRequest || r.errorCode(t) != "invalid_if_version" {
			t.Errorf("if_version %s: %d %s", name, r.status, r.body)
		}
	}
	if r, _ := ts.postItem(t, "", img, map[string]string{"id": "v", "if_version": "7"}, "If-Match", `"8"`); r.status != http.StatusBadRequest {
		t.Errorf("If-Match and if_version disagreeing: %d %s", r.status, r.body)
	}

	// NDJSON lines carry their own precondition; a stale one fails alone.
	b64 := base64.StdEncoding.EncodeToString(img)
	other := base64.StdEncoding.EncodeToString(reencode(t, photo(t, ukName(4)), 0.5, 80))
	r = do(t, "POST", ts.url+"/v1/collections/default/items:batch", "application/x-ndjson", ndjson(t,
		map[string]any{"id": "v", "image": b64, "metadata": map[string]any{"n": 5}, "if_version": v1},
		map[string]any{"id": "w", "image": other}))
	var ba batchAnswer
	r.json(t, &ba)
	if r.status != 200 || ba.Stored != 1 || ba.Results[0].Status != http.StatusConflict || ba.Results[0].Error.Code != "version_conflict" ||
		ba.Results[1].Status != http.StatusCreated || ba.Results[1].Item.Version == 0 {
		t.Fatalf("batch with a stale line: %d %s", r.status, r.body)
	}
	if it, _ := ts.getItem(t, "v"); it.Version != v3 {
		t.Errorf("the stale batch line was written: version %d, want %d", it.Version, v3)
	}
	body, ct := multipartBody(t, part{"image", "a.jpg", img})
	if r := do(t, "POST", ts.url+"/v1/collections/default/items:batch", ct, body, "If-Match", etag(v3)); r.status != http.StatusBadRequest {
		t.Errorf("If-Match on a batch: %d %s", r.status, r.body)
	}
}

// TestUploadIDsAndOutcomes: without an id the photo names the item (two different image.jpg are
// two items, the same photo again is unchanged), a batch naming one id twice fails the later item
// with duplicate_id, and every answer says created, replaced or unchanged.
func TestUploadIDsAndOutcomes(t *testing.T) {
	ts := newTestServer(t, nil)
	photos := make([][]byte, 21)
	for i := range photos {
		photos[i] = reencode(t, photo(t, ukName(i*4%148)), 0.3, 75)
	}
	r1, a1 := ts.postItem(t, "", photos[0], map[string]string{"metadata": `{"n":1}`})
	r2, a2 := ts.postItem(t, "", photos[1], nil)
	if r1.status != http.StatusCreated || r2.status != http.StatusCreated || a1.Outcome != "created" || a2.Outcome != "created" {
		t.Fatalf("two uploads named image.jpg: %d %s / %d %s", r1.status, r1.body, r2.status, r2.body)
	}
	if a1.Item.ID == a2.Item.ID || a1.Item.ID != ingest.ContentID(photos[0]) {
		t.Fatalf("ids %q and %q: want two content-derived ids", a1.Item.ID, a2.Item.ID)
	}
	r, a := ts.postItem(t, "", photos[0], map[string]string{"metadata": `{"n": 1}`})
	if r.status != http.StatusOK || a.Outcome != "unchanged" || a.Item.ID != a1.Item.ID || a.Item.Version != a1.Item.Version {
		t.Fatalf("the same photo again: %d %s, want 200 unchanged at version %d", r.status, r.body, a1.Item.Version)
	}
	r, a = ts.postItem(t, "", photos[0], map[string]string{"metadata": `{"n":2}`})
	if r.status != http.StatusCreated || a.Outcome != "replaced" || a.Item.ID != a1.Item.ID {
		t.Fatalf("the same photo with new metadata: %d %s", r.status, r.body)
	}

	// A folder upload: a/1.jpg and b/1.jpg are different photos, hence different items.
	body, ct := multipartBody(t, part{"image", "a/1.jpg", photos[2]}, part{"image", "b/1.jpg", photos[3]})
	r = do(t, "POST", ts.url+"/v1/collections/default/items:batch", ct, body)
	var ba batchAnswer
	r.json(t, &ba)
	if ba.Stored != 2 || ba.Results[0].ID == ba.Results[1].ID || ba.Results[0].Outcome != "created" {
		t.Fatalf("folder batch: %d %s", r.status, r.body)
	}

	// One id twice, across the batch's storage chunks, and one photo twice without an id.
	lines := []map[string]any{}
	for i := 4; i < len(photos); i++ {
		lines = append(lines, map[string]any{"id": fmt.Sprintf("p%d", i), "image": base64.StdEncoding.EncodeToString(photos[i])})
	}
	lines[0]["id"], lines[0]["metadata"] = "dup", map[string]any{"first": true}
	lines = append(lines,
		map[string]any{"id": "dup", "image": base64.StdEncoding.EncodeToString(photos[1]), "metadata": map[string]any{"first": false}},
		map[string]any{"image": base64.StdEncoding.EncodeToString(photos[2])},
		map[string]any{"image": base64.StdEncoding.EncodeToString(photos[2])})
	r = do(t, "POST", ts.url+"/v1/collections/default/items:batch", "application/x-ndjson", ndjson(t, lines...))
	ba = batchAnswer{}
	r.json(t, &ba)
	n := len(lines)
	if r.status != 200 || ba.Stored != n-2 || ba.Failed != 2 {
		t.Fatalf("batch with repeated ids: %d %s", r.status, r.body)
	}
	for i, want := range map[int]string{n - 3: "dup", n - 1: ingest.ContentID(photos[2])} {
		got := ba.Results[i]
		if got.Status != http.StatusBadRequest || got.Error == nil || got.Error.Code != "duplicate_id" || got.ID != want {
			t.Errorf("line %d: %+v, want 400 duplicate_id for %s", i+1, got, want)
		}
	}
	if ba.Results[n-2].Outcome != "unchanged" || ba.Results[n-2].Status != http.StatusOK {
		t.Errorf("a photo already stored, sent without id: %+v", ba.Results[n-2])
	}
	if _, meta := ts.getItem(t, "dup"); meta["first"] != true {
		t.Errorf("dup holds %v: the later line replaced the first", meta)
	}
}

// mergeVariants are copies of one photo (rescaled, re-encoded) that the duplicate test finds to
// be near duplicates of it and of each other.
func mergeVariants(t *testing.T, orig []byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = reencode(t, orig, 0.42+0.03*float64(i), 70+2*i)
	}
	return out
}

type mergeAck struct {
	key     string
	version uint64
}

// mergeConcurrently posts one merge per variant at once, each adding its own metadata key, and
// returns the acknowledged merges into target. Any other answer fails the test.
func mergeConcurrently(t *testing.T, ts *testServer, variants [][]byte, prefix, target string, start <-chan struct{}, wg *sync.WaitGroup, acks chan<- mergeAck) {
	for g, img := range variants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("%s-%d", prefix, g)
			body, ct := multipartBody(t, part{"image", "m.jpg", img}, part{"metadata", "", []byte(fmt.Sprintf(`{%q: %d.50}`, key, g))})
			<-start
			r := do(t, "POST", ts.url+"/v1/collections/default/items?on_duplicate=merge", ct, body)
			var a addAnswer
			if r.status == http.StatusOK {
				json.Unmarshal(r.body, &a)
			}
			if r.status != http.StatusOK || a.Outcome != "merged" || a.MergedInto != target || a.Item.Version == 0 {
				t.Errorf("merge %s: %d %s, want 200 merged into %s", key, r.status, r.body, target)
				return
			}
			acks <- mergeAck{key, a.Item.Version}
		}()
	}
}

// TestConcurrentMergesKeepEveryKey (defect 12.2): six simultaneous merges of copies of one photo,
// each adding its own field, ten rounds: every acknowledged field is in the stored item, with the
// exact bytes sent, and the item keeps its photo.
func TestConcurrentMergesKeepEveryKey(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) { c.Server.QueueWait = 30 * time.Second })
	orig := reencode(t, photo(t, ukName(4)), 0.5, 85)
	if r, _ := ts.postItem(t, "", orig, map[string]string{"id": "orig", "metadata": `{"price":59.90}`}); r.status != http.StatusCreated {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	before := do(t, "GET", ts.url+"/v1/collections/default/items/orig/thumbnail", "", nil).body
	variants := mergeVariants(t, photo(t, ukName(4)), 6)
	acked := map[string]bool{}
	for round := 0; round < 10; round++ {
		start := make(chan struct{})
		acks := make(chan mergeAck, len(variants))
		var wg sync.WaitGroup
		mergeConcurrently(t, ts, variants, fmt.Sprintf("r%d", round), "orig", start, &wg, acks)
		close(start)
		wg.Wait()
		close(acks)
		for a := range acks {
			acked[a.key] = true
		}
		r := do(t, "GET", ts.url+"/v1/collections/default/items/orig", "", nil)
		var it struct{ Metadata map[string]json.RawMessage }
		r.json(t, &it)
		for k := range acked {
			if _, ok := it.Metadata[k]; !ok {
				t.Errorf("round %d: acknowledged merge key %s missing from %s", round, k, r.body)
			}
		}
		if string(it.Metadata["price"]) != "59.90" {
			t.Errorf("round %d: stored price %s, want the bytes 59.90", round, it.Metadata["price"])
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	if len(acked) != 60 {
		t.Fatalf("%d of 60 merges acknowledged", len(acked))
	}
	if after := do(t, "GET", ts.url+"/v1/collections/default/items/orig/thumbnail", "", nil).body; !bytes.Equal(before, after) {
		t.Errorf("the merges changed the stored photo")
	}
}

// TestConcurrentMergesAndAReplacement (defect 12.2): eight merges and one replacement of the same item
// (a new photo and {"v":1}) at once, twenty rounds. The replacement's photo and metadata stay, and
// every merge acknowledged after it (by version) has its field in the item; merges acknowledged
// before it were replaced with the rest of the item.
func TestConcurrentMergesAndAReplacement(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) { c.Server.QueueWait = 30 * time.Second })
	orig := photo(t, ukName(8))
	oldPhoto, newPhoto := reencode(t, orig, 0.5, 85), reencode(t, orig, 0.55, 65)
	variants := mergeVariants(t, orig, 8)
	lim := ts.cfg.Limits
	newThumb, err := embed.Thumbnail(newPhoto, lim.ThumbnailSize, lim.ThumbnailQuality, lim.MaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	var after, before int
	for round := 0; round < 20; round++ {
		id := fmt.Sprintf("item-%d", round)
		if r, _ := ts.postItem(t, "", oldPhoto, map[string]string{"id": id, "metadata": `{"v":0}`}); r.status != http.StatusCreated {
			t.Fatalf("add: %d %s", r.status, r.body)
		}
		start := make(chan struct{})
		acks := make(chan mergeAck, len(variants))
		var wg sync.WaitGroup
		mergeConcurrently(t, ts, variants, fmt.Sprintf("r%d", round), id, start, &wg, acks)
		var replacedAt uint64
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, ct := multipartBody(t, part{"image", "new.jpg", newPhoto}, part{"id", "", []byte(id)}, part{"metadata", "", []byte(`{"v":1}`)})
			<-start
			time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
			r := do(t, "POST", ts.url+"/v1/collections/default/items?on_duplicate=allow", ct, body)
			var a addAnswer
			r.json(t, &a)
			if r.status != http.StatusCreated || a.Outcome != "replaced" {
				t.Errorf("replacement: %d %s", r.status, r.body)
			}
			replacedAt = a.Item.Version
		}()
		close(start)
		wg.Wait()
		close(acks)
		it, meta := ts.getItem(t, id)
		if meta["v"] != 1.0 {
			t.Errorf("round %d: the acknowledged replacement's metadata is gone: %s", round, it.Metadata)
		}
		if thumb := do(t, "GET", ts.url+"/v1/collections/default/items/"+id+"/thumbnail", "", nil).body; !bytes.Equal(thumb, newThumb) {
			t.Errorf("round %d: the item does not hold the replacement's photo", round)
		}
		for a := range acks {
			_, present := meta[a.key]
			switch {
			case a.version > replacedAt && !present:
				t.Errorf("round %d: merge %s acknowledged at version %d, after the replacement (%d), is missing: %s", round, a.key, a.version, replacedAt, it.Metadata)
			case a.version < replacedAt && present:
				t.Errorf("round %d: merge %s at version %d survived the later replacement (%d)", round, a.key, a.version, replacedAt)
			case a.version == replacedAt:
				t.Errorf("round %d: merge %s and the replacement share version %d", round, a.key, a.version)
			}
			if a.version > replacedAt {
				after++
			} else {
				before++
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		if r := do(t, "DELETE", ts.url+"/v1/collections/default/items/"+id, "", nil); r.status != http.StatusOK {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
	}
	t.Logf("%d merges landed before the replacement, %d after it", before, after)
	if after == 0 {
		t.Errorf("no merge landed after a replacement: the test did not race them")
	}
	if before+after != 160 {
		t.Errorf("%d of 160 merges acknowledged", before+after)
	}
}
