package ui_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	_ "image/gif"
	"image/jpeg"
	_ "image/png"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lookalike/lookalike/ui"
)

// csp is the policy the real server sends; the mock sends it too so that a violation shows up as
// a console error while developing against the mock.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"

type mockItem struct {
	ID       string         `json:"id"`
	Metadata map[string]any `json:"metadata"`
	Thumb    string         `json:"thumbnail_url"`
	Updated  string         `json:"updated_at"`
	hue      float64
	feat     []float64
}

// mockServer imitates the REST API with canned data so the UI can be developed and screenshotted
// before the real server exists. It is not a reference for the API's behaviour.
type mockServer struct {
	mu     sync.Mutex
	items  map[string][]*mockItem // by collection
	thumbs map[string][]byte
	start  time.Time
}

func newMockServer(t testing.TB) *httptest.Server {
	t.Helper()
	srv := newMockAPI(true)
	t.Cleanup(srv.Close)
	return srv
}

// newMockAPI starts the mock; canned fills it with generated products, otherwise it starts
// empty (like a fresh `lookalike serve`) and ranks uploaded photos by a tiny colour-layout feature,
// good enough to tell UKBench objects apart.
func newMockAPI(canned bool) *httptest.Server {
	m := &mockServer{items: map[string][]*mockItem{}, thumbs: map[string][]byte{}, start: time.Now().Add(-3*time.Hour - 17*time.Minute)}
	m.items["default"] = nil
	if canned {
		m.addCanned()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/collections", m.collections)
	mux.HandleFunc("POST /v1/collections", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name string `json:"name"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" {
			writeErr(w, 400, "invalid_name", "name is required", nil)
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.items[req.Name]; ok {
			writeErr(w, 409, "already_exists", "collection exists", nil)
			return
		}
		m.items[req.Name] = []*mockItem{}
		writeJSON(w, 201, map[string]any{"name": req.Name, "count": 0})
	})
	mux.HandleFunc("GET /v1/collections/{c}/fields", m.fields)
	mux.HandleFunc("GET /v1/collections/{c}/items", m.list)
	mux.HandleFunc("POST /v1/collections/{c}/items", m.upload)
	mux.HandleFunc("GET /v1/collections/{c}/items/{id}", m.get)
	mux.HandleFunc("DELETE /v1/collections/{c}/items/{id}", m.delete)
	mux.HandleFunc("GET /v1/collections/{c}/items/{id}/thumbnail", m.thumbnail)
	mux.HandleFunc("GET /v1/collections/{c}/items/{id}/similar", m.similar)
	mux.HandleFunc("POST /v1/collections/{c}/search", m.search)
	mux.HandleFunc("GET /v1/stats", m.stats)
	mux.HandleFunc("POST /v1/collections/{c}/feedback", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeErr(w, 400, "bad_request", "feedback is not JSON", nil)
			return
		}
		writeJSON(w, 202, map[string]any{"recorded": true, "query_id": body["query_id"]})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]string{"status": "ready"}) })
	files := http.FileServerFS(ui.Assets())
	mux.Handle("/", files)
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		mux.ServeHTTP(w, r)
	}))
}

func (m *mockServer) addCanned() {
	cats := []string{"shoes", "bags", "watches", "lamps"}
	brands := []string{"acme", "northwind", "globex", "initech", "umbrella"}
	nouns := map[string][]string{
		"shoes":   {"Trail runner", "Leather loafer", "Canvas sneaker", "Hiking boot"},
		"bags":    {"Tote bag", "Messenger bag", "Backpack", "Clutch"},
		"watches": {"Dive watch", "Field watch", "Chronograph", "Dress watch"},
		"lamps":   {"Desk lamp", "Floor lamp", "Pendant light", "Table lamp"},
	}
	for i := range 46 {
		cat := cats[i%len(cats)]
		it := &mockItem{
			ID: fmt.Sprintf("sku-%04d", 1000+i*7),
			Metadata: map[string]any{
				"name":     fmt.Sprintf("%s %d", nouns[cat][(i/4)%4], i),
				"category": cat,
				"brand":    brands[i%len(brands)],
				"price":    math.Round(float64(12+(i*37)%230)*100) / 100,
				"color":    []string{"red", "blue", "black", "white", "green"}[i%5],
			},
			Updated: time.Date(2026, 11, 20, 10, i, 0, 0, time.UTC).Format(time.RFC3339),
			hue:     float64(i*47%360) / 360,
		}
		m.add("default", it)
	}
	m.add("default", &mockItem{ID: "xss-1", Metadata: map[string]any{"name": "<script>alert(1)</script>", "category": "<b>bold</b>", "brand": "<img src=x onerror=alert(2)>", "price": 9.5}, Updated: time.Now().UTC().Format(time.RFC3339), hue: 0.8})
	for i := range 5 {
		m.add("furniture", &mockItem{ID: fmt.Sprintf("chair-%d", i), Metadata: map[string]any{"category": "chairs", "price": 100 + i}, Updated: time.Now().UTC().Format(time.RFC3339), hue: float64(i) / 5})
	}
}

func (m *mockServer) add(c string, it *mockItem) {
	m.put(c, it, drawThumb(it.hue, len(m.items[c])+1))
}

// put stores (or replaces) an item with its thumbnail and the feature of that thumbnail.
func (m *mockServer) put(c string, it *mockItem, thumb []byte) {
	it.Thumb = fmt.Sprintf("/v1/collections/%s/items/%s/thumbnail", c, it.ID)
	if img, _, err := image.Decode(bytes.NewReader(thumb)); err == nil {
		it.feat = feature(img)
	}
	m.items[c] = slices.DeleteFunc(m.items[c], func(o *mockItem) bool { return o.ID == it.ID })
	m.items[c] = append(m.items[c], it)
	m.thumbs[c+"/"+it.ID] = thumb
}

// feature is a 6×6 grid of mean colours, centred and normalised, so a dot product is a cosine.
func feature(img image.Image) []float64 {
	const g = 6
	b := img.Bounds()
	f := make([]float64, g*g*3)
	n := make([]float64, g*g)
	step := max(1, min(b.Dx(), b.Dy())/96)
	for y := b.Min.Y; y < b.Max.Y; y += step {
		for x := b.Min.X; x < b.Max.X; x += step {
			cell := ((y-b.Min.Y)*g/b.Dy())*g + (x-b.Min.X)*g/b.Dx()
			r, gg, bb, _ := img.At(x, y).RGBA()
			f[cell*3] += float64(r)
			f[cell*3+1] += float64(gg)
			f[cell*3+2] += float64(bb)
			n[cell]++
		}
	}
	var mean, norm float64
	for i := range f {
		f[i] /= max(1, n[i/3])
		mean += f[i] / float64(len(f))
	}
	for i := range f {
		f[i] -= mean
		norm += f[i] * f[i]
	}
	for i := range f {
		f[i] /= max(math.Sqrt(norm), 1e-9)
	}
	return f
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range min(len(a), len(b)) {
		s += a[i] * b[i]
	}
	return s
}

// shrink makes a thumbnail of at most 256 px by nearest-neighbour sampling (stdlib only).
func shrink(img image.Image) []byte {
	b := img.Bounds()
	scale := max(1, float64(max(b.Dx(), b.Dy()))/256)
	w, h := int(float64(b.Dx())/scale), int(float64(b.Dy())/scale)
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			out.Set(x, y, img.At(b.Min.X+int(float64(x)*scale), b.Min.Y+int(float64(y)*scale)))
		}
	}
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, out, &jpeg.Options{Quality: 85})
	return buf.Bytes()
}

// drawThumb paints a product-ish picture: a coloured rounded blob on a light background.
func drawThumb(hue float64, seed int) []byte {
	const n = 256
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	r, g, b := hsv(hue, 0.65, 0.85)
	cx, cy := 128+float64(seed%5-2)*12, 128+float64(seed%3-1)*14
	rx, ry := 70+float64(seed%4)*10, 55+float64(seed%6)*8
	for y := range n {
		for x := range n {
			dx, dy := (float64(x)-cx)/rx, (float64(y)-cy)/ry
			d := dx*dx + dy*dy
			bg := uint8(244 - y/16)
			c := color.RGBA{bg, bg, uint8(int(bg) - 2), 255}
			if d < 1 {
				shade := 1 - 0.35*d
				c = color.RGBA{uint8(float64(r) * shade), uint8(float64(g) * shade), uint8(float64(b) * shade), 255}
			} else if d < 1.25 && y > int(cy) {
				c = color.RGBA{bg - 30, bg - 30, bg - 28, 255}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85})
	return buf.Bytes()
}

func hsv(h, s, v float64) (uint8, uint8, uint8) {
	i := math.Floor(h * 6)
	f := h*6 - i
	p, q, t := v*(1-s), v*(1-f*s), v*(1-(1-f)*s)
	var r, g, b float64
	switch int(i) % 6 {
	case 0:
		r, g, b = v, t, p
	case 1:
		r, g, b = q, v, p
	case 2:
		r, g, b = p, v, t
	case 3:
		r, g, b = p, q, v
	case 4:
		r, g, b = t, p, v
	default:
		r, g, b = v, p, q
	}
	return uint8(r * 255), uint8(g * 255), uint8(b * 255)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string, details map[string]any) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg, "details": details}})
}

func (m *mockServer) collections(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []map[string]any
	names := make([]string, 0, len(m.items))
	for c := range m.items {
		names = append(names, c)
	}
	slices.Sort(names)
	for _, c := range names {
		out = append(out, map[string]any{"name": c, "count": len(m.items[c]), "dims": 1280, "fingerprint": "mnv2-int8-7f3a", "model": "mobilenetv2-int8", "levels": 3})
	}
	writeJSON(w, 200, map[string]any{"collections": out})
}

func (m *mockServer) fields(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	kw := map[string]map[string]bool{}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, it := range m.items[r.PathValue("c")] {
		for k, v := range it.Metadata {
			switch v := v.(type) {
			case string:
				if kw[k] == nil {
					kw[k] = map[string]bool{}
				}
				kw[k][v] = true
			case float64:
				lo, hi = min(lo, v), max(hi, v)
			case int:
				lo, hi = min(lo, float64(v)), max(hi, float64(v))
			}
		}
	}
	var fields []map[string]any
	for _, k := range []string{"category", "brand", "color"} {
		if kw[k] == nil {
			continue
		}
		vals := make([]string, 0, len(kw[k]))
		for v := range kw[k] {
			vals = append(vals, v)
		}
		slices.Sort(vals)
		fields = append(fields, map[string]any{"name": k, "type": "keyword", "values": vals})
	}
	if hi > lo {
		fields = append(fields, map[string]any{"name": "price", "type": "number", "min": lo, "max": hi})
	}
	writeJSON(w, 200, map[string]any{"fields": fields})
}

func page[T any](all []T, cursor string, limit int) ([]T, string) {
	off, _ := strconv.Atoi(cursor)
	off = min(max(off, 0), len(all))
	end := min(off+limit, len(all))
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	return all[off:end], next
}

func (m *mockServer) list(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 {
		limit = 50
	}
	items, next := page(m.items[r.PathValue("c")], r.URL.Query().Get("cursor"), limit)
	writeJSON(w, 200, map[string]any{"items": items, "next_cursor": next})
}

func (m *mockServer) find(c, id string) *mockItem {
	for _, it := range m.items[c] {
		if it.ID == id {
			return it
		}
	}
	return nil
}

func (m *mockServer) get(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it := m.find(r.PathValue("c"), r.PathValue("id"))
	if it == nil {
		writeErr(w, 404, "item_not_found", "no item "+r.PathValue("id"), nil)
		return
	}
	writeJSON(w, 200, map[string]any{"id": it.ID, "metadata": it.Metadata, "thumbnail_url": it.Thumb, "updated_at": it.Updated,
		"labels": []map[string]any{{"name": "running shoe", "prob": 0.62}, {"name": "sandal", "prob": 0.21}, {"name": "clog", "prob": 0.06}}})
}

func (m *mockServer) delete(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, id := r.PathValue("c"), r.PathValue("id")
	i := slices.IndexFunc(m.items[c], func(it *mockItem) bool { return it.ID == id })
	if i < 0 {
		writeErr(w, 404, "item_not_found", "no item "+id, nil)
		return
	}
	m.items[c] = slices.Delete(m.items[c], i, i+1)
	writeJSON(w, 200, map[string]any{"deleted": 1})
}

func (m *mockServer) thumbnail(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	b, ok := m.thumbs[r.PathValue("c")+"/"+r.PathValue("id")]
	m.mu.Unlock()
	if !ok {
		writeErr(w, 404, "item_not_found", "no thumbnail", nil)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	_, _ = w.Write(b)
}

func (m *mockServer) upload(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	_, exists := m.items[r.PathValue("c")]
	m.mu.Unlock()
	if !exists {
		writeErr(w, 404, "collection_not_found", "no collection named "+r.PathValue("c"), nil)
		return
	}
	f, hdr, err := r.FormFile("image")
	if err != nil {
		writeErr(w, 400, "missing_image", "multipart field image is required", nil)
		return
	}
	defer f.Close()
	if hdr.Size > 8<<20 {
		writeErr(w, 413, "image_too_large", "image exceeds 8 MiB", map[string]any{"max_bytes": 8 << 20})
		return
	}
	data, err := io.ReadAll(f)
	if err != nil {
		writeErr(w, 400, "connection_error", "the upload could not be read", nil)
		return
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		writeErr(w, 415, "not_an_image", "the file is not an image Lookalike can read (JPEG, PNG, GIF)", nil)
		return
	}
	meta := map[string]any{}
	if s := r.FormValue("metadata"); s != "" {
		if err := json.Unmarshal([]byte(s), &meta); err != nil {
			writeErr(w, 400, "bad_metadata", "metadata is not a JSON object", nil)
			return
		}
	}
	id := r.FormValue("id")
	if id == "" { // like the server: the photo's content names it, never the file name
		sum := sha256.Sum256(data)
		id = "img-" + hex.EncodeToString(sum[:16])
	}
	time.Sleep(200 * time.Millisecond) // let the progress UI show
	m.mu.Lock()
	defer m.mu.Unlock()
	c := r.PathValue("c")
	it := &mockItem{ID: id, Metadata: meta, Updated: time.Now().UTC().Format(time.RFC3339)}
	m.put(c, it, shrink(img))
	writeJSON(w, 201, map[string]any{"item": map[string]any{"id": it.ID, "metadata": meta, "thumbnail_url": it.Thumb, "fingerprint": "mock", "dims": len(it.feat), "updated_at": it.Updated, "version": 1}, "outcome": "created", "near_duplicate_of": nil})
}

type mockResult struct {
	ID       string         `json:"id"`
	Score    float64        `json:"score"`
	Metadata map[string]any `json:"metadata"`
	Thumb    string         `json:"thumbnail_url"`
}

func (m *mockServer) ranked(c string, q []float64, filter string, skip string) []mockResult {
	var f map[string]any
	_ = json.Unmarshal([]byte(filter), &f)
	var out []mockResult
	for _, it := range m.items[c] {
		if it.ID == skip || !matches(it.Metadata, f) {
			continue
		}
		out = append(out, mockResult{it.ID, dot(q, it.feat), it.Metadata, it.Thumb})
	}
	slices.SortFunc(out, func(a, b mockResult) int { return int(math.Copysign(1, b.Score-a.Score)) })
	return out
}

func matches(meta, f map[string]any) bool {
	for k, want := range f {
		got := meta[k]
		switch want := want.(type) {
		case string:
			if got != want {
				return false
			}
		case map[string]any:
			v, ok := got.(float64)
			if !ok {
				return false
			}
			if lo, ok := want["gte"].(float64); ok && v < lo {
				return false
			}
			if hi, ok := want["lte"].(float64); ok && v > hi {
				return false
			}
		}
	}
	return true
}

func (m *mockServer) search(w http.ResponseWriter, r *http.Request) {
	f, _, err := r.FormFile("image")
	if err != nil {
		writeErr(w, 400, "missing_image", "multipart field image is required", nil)
		return
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		writeErr(w, 400, "connection_error", "the upload could not be read", nil)
		return
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		writeErr(w, 415, "not_an_image", "the file is not an image Lookalike can read (JPEG, PNG, GIF)", map[string]any{"field": "image"})
		return
	}
	if crop := r.FormValue("crop"); crop != "" {
		var x, y, cw, ch int
		b := img.Bounds()
		if _, err := fmt.Sscanf(crop, "%d,%d,%d,%d", &x, &y, &cw, &ch); err != nil || cw <= 0 || ch <= 0 || x < 0 || y < 0 || x+cw > b.Dx() || y+ch > b.Dy() {
			writeErr(w, 400, "bad_crop", fmt.Sprintf("crop %q is not inside the %dx%d image", crop, b.Dx(), b.Dy()), nil)
			return
		}
		img = img.(interface {
			SubImage(image.Rectangle) image.Image
		}).SubImage(image.Rect(b.Min.X+x, b.Min.Y+y, b.Min.X+x+cw, b.Min.Y+y+ch))
	}
	q := feature(img)
	k, _ := strconv.Atoi(r.FormValue("k"))
	if k <= 0 {
		k = 20
	}
	m.mu.Lock()
	res, next := page(m.ranked(r.PathValue("c"), q, r.FormValue("filter"), ""), r.FormValue("cursor"), k)
	m.mu.Unlock()
	writeJSON(w, 200, map[string]any{"results": res, "model": "mobilenetv2-int8", "next_cursor": next,
		"timings_ms": map[string]float64{"decode": 4.2, "preprocess": 1.1, "inference": 23.8, "search": 0.6, "total": 30.4}})
}

func (m *mockServer) similar(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, id := r.PathValue("c"), r.PathValue("id")
	it := m.find(c, id)
	if it == nil {
		writeErr(w, 404, "item_not_found", "no item "+id, nil)
		return
	}
	k, _ := strconv.Atoi(r.URL.Query().Get("k"))
	if k <= 0 {
		k = 20
	}
	res, next := page(m.ranked(c, it.feat, r.URL.Query().Get("filter"), id), r.URL.Query().Get("cursor"), k)
	writeJSON(w, 200, map[string]any{"results": res, "model": "mobilenetv2-int8", "next_cursor": next,
		"timings_ms": map[string]float64{"decode": 0, "preprocess": 0, "inference": 0, "search": 0.4, "total": 0.9}})
}

func (m *mockServer) stats(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now().Unix()
	var series []map[string]any
	for i := range 60 {
		t := now - int64(59-i)*10
		x := float64(i)
		series = append(series, map[string]any{"t": t, "qps": 2 + 1.5*math.Sin(x/7) + float64(i%3)*0.3,
			"p50_ms": 28 + 3*math.Sin(x/5), "p95_ms": 55 + 10*math.Sin(x/6), "p99_ms": 90 + 25*math.Sin(x/4),
			"rejected": []int{0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0}[i%12]})
	}
	var cols []map[string]any
	for c, items := range m.items {
		cols = append(cols, map[string]any{"name": c, "count": len(items), "levels": 3})
	}
	slices.SortFunc(cols, func(a, b map[string]any) int { return strings.Compare(a["name"].(string), b["name"].(string)) })
	writeJSON(w, 200, map[string]any{
		"uptime_s":    time.Since(m.start).Seconds(),
		"model":       map[string]any{"id": "mobilenetv2-int8", "fingerprint": "7f3a91c2e4b8d0aa", "device": "cpu", "dims": 1280},
		"collections": cols, "window_s": 600, "series": series,
		"totals":  map[string]any{"requests": 18234, "searches": 9120, "rejected_by_reason": map[string]int{"not_an_image": 12, "image_too_large": 3, "busy": 1}},
		"quality": map[string]any{"ukbench_ns_score": 3.91, "recall_at_10": 0.982, "evaluated_at": "2026-11-26T20:00:00Z"},
	})
}

// TestMockServe serves the UI and the mock API until interrupted, for manual work in a browser:
// LOOKALIKE_UI_MOCK=1 go test ./ui -run TestMockServe -v -timeout 0
func TestMockServe(t *testing.T) {
	if !envSet("LOOKALIKE_UI_MOCK") {
		t.Skip("set LOOKALIKE_UI_MOCK=1 to serve the UI against the mock API")
	}
	srv := newMockServer(t)
	t.Logf("serving the UI with the mock API at %s", srv.URL)
	select {}
}

var _ fs.FS = ui.Assets()
