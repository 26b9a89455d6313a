package api

// Hostile input over real HTTP: decompression bombs, malformed and polyglot files, hostile ids,
// metadata and filters, fuzzed item and batch bodies, and overload.

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// ---- generated hostile images ----

func pngChunk(buf *bytes.Buffer, typ string, data []byte) {
	binary.Write(buf, binary.BigEndian, uint32(len(data)))
	c := append([]byte(typ), data...)
	buf.Write(c)
	binary.Write(buf, binary.BigEndian, crc32.ChecksumIEEE(c))
}

// pngBomb is a complete PNG claiming w×h pixels whose IDAT is a few KB of compressed zeros.
func pngBomb(w, h uint32) []byte {
	var buf bytes.Buffer
	buf.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2
	pngChunk(&buf, "IHDR", ihdr)
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	zw.Write(make([]byte, 4<<20))
	zw.Close()
	pngChunk(&buf, "IDAT", z.Bytes())
	pngChunk(&buf, "IEND", nil)
	return buf.Bytes()
}

func smallJPEG(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 5), 90, 255})
		}
	}
	var buf bytes.Buffer
	jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80})
	return buf.Bytes()
}

// jpegWithSize rewrites the frame header (SOF0) of a small JPEG to claim w×h.
func jpegWithSize(w, h uint16) []byte {
	b := smallJPEG(16, 16)
	i := bytes.Index(b, []byte{0xff, 0xc0})
	binary.BigEndian.PutUint16(b[i+5:], h)
	binary.BigEndian.PutUint16(b[i+7:], w)
	return b
}

// jpegWithAPP1 inserts APP1 segments after SOI.
func jpegWithAPP1(segments ...[]byte) []byte {
	b := smallJPEG(64, 48)
	var out bytes.Buffer
	out.Write(b[:2])
	for _, s := range segments {
		out.Write([]byte{0xff, 0xe1})
		binary.Write(&out, binary.BigEndian, uint16(len(s)+2))
		out.Write(s)
	}
	out.Write(b[2:])
	return out.Bytes()
}

// exifLoop is an EXIF block whose IFD0 claims 65535 entries and whose next-IFD offset points back
// at itself.
func exifLoop() []byte {
	var t bytes.Buffer
	t.WriteString("Exif\x00\x00II*\x00")
	binary.Write(&t, binary.LittleEndian, uint32(8))
	binary.Write(&t, binary.LittleEndian, uint16(0xffff))
	for i := 0; i < 40; i++ { // orientation entries, then garbage
		binary.Write(&t, binary.LittleEndian, []uint16{0x0112, 3})
		binary.Write(&t, binary.LittleEndian, []uint32{1, 6})
	}
	binary.Write(&t, binary.LittleEndian, uint32(8)) // next IFD: itself
	return t.Bytes()
}

func gifWithScreen(w, h uint16) []byte {
	var buf bytes.Buffer
	gif.Encode(&buf, image.NewPaletted(image.Rect(0, 0, 2, 2), palette.Plan9), nil)
	b := buf.Bytes()
	binary.LittleEndian.PutUint16(b[6:], w)
	binary.LittleEndian.PutUint16(b[8:], h)
	return b
}

func animatedGIF(frames int) []byte {
	g := &gif.GIF{}
	for i := 0; i < frames; i++ {
		p := image.NewPaletted(image.Rect(0, 0, 16, 16), palette.Plan9)
		p.Pix[i%256] = uint8(i)
		g.Image = append(g.Image, p)
		g.Delay = append(g.Delay, 0)
	}
	var buf bytes.Buffer
	gif.EncodeAll(&buf, g)
	return buf.Bytes()
}

func riff(chunks ...[]byte) []byte {
	var body bytes.Buffer
	body.WriteString("WEBP")
	for _, c := range chunks {
		body.Write(c)
	}
	var out bytes.Buffer
	out.WriteString("RIFF")
	binary.Write(&out, binary.LittleEndian, uint32(body.Len()))
	out.Write(body.Bytes())
	return out.Bytes()
}

func webpChunk(typ string, data []byte) []byte {
	var b bytes.Buffer
	b.WriteString(typ)
	binary.Write(&b, binary.LittleEndian, uint32(len(data)))
	b.Write(data)
	if len(data)%2 == 1 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

// vp8l is a lossless WebP bitstream header claiming w×h (at most 16384 each), plus junk.
func vp8l(w, h uint32) []byte {
	d := []byte{0x2f}
	d = binary.LittleEndian.AppendUint32(d, (w-1)|(h-1)<<14)
	return append(d, make([]byte, 64)...)
}

func webpVP8X(w, h uint32) []byte {
	x := make([]byte, 10)
	x[4], x[5], x[6] = byte(w-1), byte((w-1)>>8), byte((w-1)>>16)
	x[7], x[8], x[9] = byte(h-1), byte((h-1)>>8), byte((h-1)>>16)
	return riff(webpChunk("VP8X", x), webpChunk("VP8L", vp8l(16384, 16384)))
}

func bmpHeader(w, h int32) []byte {
	var b bytes.Buffer
	b.WriteString("BM")
	binary.Write(&b, binary.LittleEndian, []uint32{54 + 16, 0, 54})
	binary.Write(&b, binary.LittleEndian, []int32{40, w, h})
	binary.Write(&b, binary.LittleEndian, []uint16{1, 24})
	binary.Write(&b, binary.LittleEndian, []uint32{0, 16, 2835, 2835, 0, 0})
	b.Write(make([]byte, 16))
	return b.Bytes()
}

func tiffHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("II*\x00")
	binary.Write(&b, binary.LittleEndian, uint32(8))
	entries := [][3]uint32{{256, 4, w}, {257, 4, h}, {258, 3, 8}, {259, 3, 1}, {262, 3, 1}, {273, 4, 200}, {277, 3, 1}, {278, 4, h}, {279, 4, 16}}
	binary.Write(&b, binary.LittleEndian, uint16(len(entries)))
	for _, e := range entries {
		binary.Write(&b, binary.LittleEndian, uint16(e[0]))
		binary.Write(&b, binary.LittleEndian, uint16(e[1]))
		binary.Write(&b, binary.LittleEndian, uint32(1))
		binary.Write(&b, binary.LittleEndian, e[2])
	}
	binary.Write(&b, binary.LittleEndian, uint32(0))
	b.Write(make([]byte, 64))
	return b.Bytes()
}

func zipTail() []byte {
	return []byte("PK\x03\x04\x14\x00\x00\x00\x00\x00payload.html<script>alert(document.cookie)</script>PK\x05\x06" + strings.Repeat("\x00", 18))
}

type hostileCase struct {
	name  string
	data  []byte
	codes map[int]string // accepted status → error code ("" for success)
}

func hostileImages() []hostileCase {
	bomb := map[int]string{413: "image_too_large"}
	corrupt := map[int]string{422: "corrupt_image"}
	notImage := map[int]string{415: "not_an_image"}
	ok := map[int]string{200: "", 201: ""}
	bigEXIF := make([][]byte, 0, 55)
	for i := 0; i < 55; i++ {
		bigEXIF = append(bigEXIF, append([]byte("Exif\x00\x00II*\x00\x08\x00\x00\x00"), bytes.Repeat([]byte{0xA5}, 65000)...))
	}
	return []hostileCase{
		{"png 50000x50000 with compressed zeros", pngBomb(50000, 50000), bomb},
		{"png 8000x8000 just over the pixel limit", pngBomb(8000, 8000), bomb},
		{"jpeg header 50000x50000", jpegWithSize(50000, 50000), bomb},
		{"gif screen 50000x50000", gifWithScreen(50000, 50000), bomb},
		{"webp VP8X canvas 50000x50000", webpVP8X(50000, 50000), map[int]string{413: "image_too_large", 422: "corrupt_image"}},
		{"webp VP8L 16384x16384", riff(webpChunk("VP8L", vp8l(16384, 16384))), bomb},
		{"bmp 50000x50000", bmpHeader(50000, 50000), bomb},
		{"bmp 50000x-50000 (top-down)", bmpHeader(50000, -50000), bomb},
		{"tiff 50000x50000", tiffHeader(50000, 50000), bomb},
		{"png zero width", pngBomb(0, 100), corrupt},
		{"png zero height", pngBomb(100, 0), corrupt},
		{"gif zero screen", gifWithScreen(0, 0), corrupt},
		{"bmp zero width", bmpHeader(0, 10), map[int]string{422: "corrupt_image", 415: "unsupported_image"}},
		{"animated gif, 3000 frames", animatedGIF(3000), ok},
		{"jpeg with 3.5 MB of EXIF", jpegWithAPP1(bigEXIF...), ok},
		{"jpeg with a looping 65535-entry EXIF IFD", jpegWithAPP1(exifLoop()), ok},
		// its header ("/*" as the width) claims 10799×10: refused for its aspect ratio before decoding
		{"polyglot gif/javascript", []byte("GIF89a/*\x0a\x00\x00\x00\x00*/=1;alert(document.domain);//" + strings.Repeat(" ", 64)), map[int]string{422: "extreme_aspect_ratio"}},
		{"polyglot png magic + php", append([]byte("\x89PNG\r\n\x1a\n"), []byte("<?php system($_GET['c']); ?>")...), corrupt},
		{"html", []byte("<!doctype html><script>alert(1)</script>"), notImage},
		{"svg with script", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="10" height="10"/></svg>`), notImage},
		{"pdf", []byte("%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF"), notImage},
		{"real jpeg with a zip appended", append(smallJPEG(64, 48), zipTail()...), ok},
	}
}

// TestHostileImages sends each hostile file as a search query and as a new item over HTTP: each gets
// its status and error code, is refused before any large allocation (the Go heap allocates less than
// 64 MB per request), stores nothing when refused, and the server keeps answering.
func TestHostileImages(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts)
	var worst uint64
	polyglot := ""
	for i, tc := range hostileImages() {
		if strings.HasPrefix(tc.name, "real jpeg with a zip") {
			polyglot = fmt.Sprintf("hostile-%02d", i)
		}
		t.Run(tc.name, func(t *testing.T) {
			for _, endpoint := range []string{"search", "items"} {
				id := fmt.Sprintf("hostile-%02d", i)
				var ms0, ms1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms0)
				start := time.Now()
				parts := []part{{"image", "x.bin", tc.data}}
				if endpoint == "items" {
					parts = append(parts, part{"id", "", []byte(id)})
				}
				body, ct := multipartBody(t, parts...)
				r := do(t, "POST", ts.url+"/v1/collections/default/"+endpoint, ct, body)
				took := time.Since(start)
				runtime.ReadMemStats(&ms1)
				alloc := ms1.TotalAlloc - ms0.TotalAlloc
				worst = max(worst, alloc)
				want, ok := tc.codes[r.status]
				if !ok {
					t.Errorf("%s: status %d, want one of %v: %.300s", endpoint, r.status, tc.codes, r.body)
					continue
				}
				if r.status >= 400 {
					if code := r.errorCode(t); code != want {
						t.Errorf("%s: code %q, want %q: %s", endpoint, code, want, r.body)
					}
					if endpoint == "items" {
						if g := do(t, "GET", ts.url+"/v1/collections/default/items/"+id, "", nil); g.status != 404 {
							t.Errorf("a refused item was stored: %d", g.status)
						}
					}
				}
				if alloc > 64<<20 {
					t.Errorf("%s: %d MB allocated for a %d-byte file", endpoint, alloc>>20, len(tc.data))
				}
				if took > 10*time.Second {
					t.Errorf("%s: took %s", endpoint, took)
				}
				t.Logf("%s: %d in %s, %.1f MB allocated", endpoint, r.status, took.Round(time.Millisecond), float64(alloc)/(1<<20))
			}
		})
	}
	t.Logf("largest Go allocation for one hostile request: %.1f MB", float64(worst)/(1<<20))
	// A polyglot that is a real image is stored, but only its re-encoded thumbnail is ever served.
	r := do(t, "GET", ts.url+"/v1/collections/default/items/"+polyglot+"/thumbnail", "", nil)
	if r.status != 200 || bytes.Contains(r.body, []byte("PK\x03\x04")) || bytes.Contains(r.body, []byte("<script>")) {
		t.Errorf("thumbnail of the jpeg+zip polyglot: %d, carries the payload: %v", r.status, bytes.Contains(r.body, []byte("<script>")))
	}
	if r, sr := ts.searchImage(t, photo(t, ukName(3))); r.status != 200 || sr.Results[0].ID != "ukbench00003" {
		t.Fatalf("server no longer answers correctly: %d %s", r.status, r.body)
	}
}

// escapeID escapes an id for a URL path segment, dots included, so that neither the client nor the
// server's path normalisation turns "." or ".." into a directory step.
func escapeID(id string) string {
	return strings.ReplaceAll(url.PathEscape(id), ".", "%2E")
}

// TestHostileIDs: ids that look like paths, URLs or tricks are plain bbolt keys: they round-trip
// through add, get, thumbnail, similar, list and delete unchanged, and no file appears anywhere near
// the data directory. Ids over the limit, with control characters or invalid UTF-8, and the dot
// segments "." and ".." are refused.
func TestHostileIDs(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts)
	parent := filepath.Dir(ts.dir)
	before := listTree(t, parent)
	jpg := reencode(t, photo(t, ukName(9)), 0.25, 70)
	good := []string{
		"../../etc/passwd", "..\\..\\windows\\win.ini", "/etc/shadow", "a/../../b", "./x", "...",
		"%2e%2e%2fetc", "%00", "~root", "$(touch /tmp/pwned)", "`id`", "; rm -rf /", "<script>alert(1)</script>",
		"名前/ürün?x=1#frag", "\u202eevil", "emoji-😀", "con", "NUL.txt", "a b", "trailing/", strings.Repeat("é", 128),
		strings.Repeat("x", 256),
	}
	for _, id := range good {
		t.Run("ok "+id[:min(len(id), 24)], func(t *testing.T) {
			body, ct := multipartBody(t, part{"image", "x.jpg", jpg}, part{"id", "", []byte(id)}, part{"metadata", "", []byte(`{"k":"v"}`)})
			r := do(t, "POST", ts.url+"/v1/collections/default/items", ct, body)
			if r.status != 201 {
				t.Fatalf("add: %d %s", r.status, r.body)
			}
			var added addResult
			r.json(t, &added)
			if added.Item == nil || added.Item.ID != id {
				t.Fatalf("add answered another id: %s", r.body)
			}
			u := ts.url + "/v1/collections/default/items/" + escapeID(id)
			r = do(t, "GET", u, "", nil)
			var got itemJSON
			if r.status == 200 {
				r.json(t, &got)
			}
			if r.status != 200 || got.ID != id {
				t.Fatalf("get %s: %d %s", u, r.status, r.body)
			}
			if r := do(t, "GET", u+"/thumbnail", "", nil); r.status != 200 {
				t.Errorf("thumbnail: %d", r.status)
			}
			if r := do(t, "GET", ts.url+got.ThumbnailURL, "", nil); r.status != 200 {
				t.Errorf("the thumbnail_url the API returned (%s) does not work: %d", got.ThumbnailURL, r.status)
			}
			if r := do(t, "GET", u+"/similar?k=2", "", nil); r.status != 200 {
				t.Errorf("similar: %d %s", r.status, r.body)
			}
			if r := do(t, "DELETE", u, "", nil); r.status != 200 {
				t.Errorf("delete: %d %s", r.status, r.body)
			}
			if r := do(t, "GET", u, "", nil); r.status != 404 {
				t.Errorf("after delete: %d", r.status)
			}
		})
	}
	bad := map[string][]byte{
		"257 bytes":      []byte(strings.Repeat("x", 257)),
		"nul":            []byte("a\x00b"),
		"newline":        []byte("a\nb"),
		"del":            []byte("a\x7fb"),
		"invalid utf-8":  []byte("a\xff\xfeb"),
		"overlong utf-8": []byte("a\xc0\xafb"),
		"lone surrogate": []byte("a\xed\xa0\x80b"),
		"dot":            []byte("."), // a browser resolves the item's URLs to its parent
		"dot dot":        []byte(".."),
	}
	for name, id := range bad {
		t.Run("refused "+name, func(t *testing.T) {
			body, ct := multipartBody(t, part{"image", "x.jpg", jpg}, part{"id", "", id})
			r := do(t, "POST", ts.url+"/v1/collections/default/items", ct, body)
			if r.status != 400 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			// Same through a JSON batch line (JSON strings cannot hold raw invalid UTF-8, so
			// those are sent as the bytes the decoder sees).
			line, _ := json.Marshal(map[string]any{"id": string(id), "image": base64.StdEncoding.EncodeToString(jpg)})
			r = do(t, "POST", ts.url+"/v1/collections/default/items:batch", "application/x-ndjson", bytes.NewReader(line))
			var br struct {
				Stored  int
				Results []struct{ Status int }
			}
			r.json(t, &br)
			if name != "invalid utf-8" && name != "overlong utf-8" && name != "lone surrogate" && (br.Stored != 0 || len(br.Results) != 1 || br.Results[0].Status != 400) {
				t.Errorf("batch: %d %s", r.status, r.body)
			}
		})
	}
	if after := listTree(t, parent); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("files appeared or vanished next to the data directory:\nbefore %v\nafter  %v", before, after)
	}
	if _, err := os.Stat("/tmp/pwned"); err == nil {
		t.Errorf("an id was executed")
	}
}

func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// TestHostileMetadataAndFilters: metadata at and over its size limit, invalid UTF-8 and deeply
// nested JSON; filters nested beyond the depth limit, over the length limit, or huge IN lists: each
// gets a 4xx naming the problem (never a 500, a hang or a crash), and the server keeps answering.
func TestHostileMetadataAndFilters(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts)
	jpg := reencode(t, photo(t, ukName(10)), 0.25, 70)
	limit := config.Default().Limits.MaxMetadataBytes
	pad := func(n int) string { // a JSON object of exactly n bytes
		return `{"a":"` + strings.Repeat("x", n-8) + `"}`
	}
	meta := []struct {
		name   string
		meta   string
		status int
		code   string
	}{
		{"exactly the limit", pad(limit), 201, ""},
		{"one byte over", pad(limit + 1), 413, "metadata_too_large"},
		{"invalid utf-8", "{\"a\":\"\xff\xfe\"}", 400, "invalid_metadata"},
		{"nested 10000 deep", `{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, 400, "invalid_metadata"},
		{"nested objects 200 deep", strings.Repeat(`{"a":`, 200) + "1" + strings.Repeat("}", 200), 201, ""},
		{"5000 keys", func() string {
			var b strings.Builder
			b.WriteString("{")
			for i := 0; i < 5000; i++ {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `"k%d":%d`, i, i)
			}
			return b.String() + "}"
		}(), 201, ""},
		{"duplicate keys", `{"a":1,"a":2}`, 201, ""},
		{"not an object", `"just a string"`, 400, "invalid_metadata"},
		{"trailing garbage", `{"a":1} {"b":2}`, 400, "invalid_metadata"},
		{"proto keys", `{"__proto__":{"admin":true},"constructor":{"prototype":1}}`, 201, ""},
	}
	for i, tc := range meta {
		t.Run("metadata "+tc.name, func(t *testing.T) {
			body, ct := multipartBody(t, part{"image", "x.jpg", jpg}, part{"id", "", []byte(fmt.Sprintf("meta-%d", i))}, part{"metadata", "", []byte(tc.meta)})
			r := do(t, "POST", ts.url+"/v1/collections/default/items", ct, body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %.300s", r.status, tc.status, r.body)
			}
			if tc.code != "" {
				if code := r.errorCode(t); code != tc.code {
					t.Fatalf("code %q, want %q", code, tc.code)
				}
				return
			}
			g := do(t, "GET", ts.url+fmt.Sprintf("/v1/collections/default/items/meta-%d", i), "", nil)
			var got struct{ Metadata json.RawMessage }
			g.json(t, &got)
			var a, b any
			json.Unmarshal([]byte(tc.meta), &a)
			json.Unmarshal(got.Metadata, &b)
			if g.status != 200 || fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("metadata did not round-trip: %d %.200s", g.status, g.body)
			}
		})
	}
	filters := []struct{ name, filter string }{
		{"parentheses 10000 deep", strings.Repeat("(", 10000) + `price > 1` + strings.Repeat(")", 10000)},
		{"parentheses 33 deep", strings.Repeat("(", 33) + `price > 1` + strings.Repeat(")", 33)},
		{"NOT 3000 times", strings.Repeat("NOT ", 3000) + `price > 1`},
		{"unbalanced", strings.Repeat("(", 50) + `price > 1`},
		{"json and 1000 deep", strings.Repeat(`{"and":[`, 1000) + `{"price":1}` + strings.Repeat("]}", 1000)},
		{"json not 40 deep", strings.Repeat(`{"not":`, 40) + `{"price":1}` + strings.Repeat("}", 40)},
		{"over 4096 bytes", `category IN (` + strings.Repeat(`"xxxxxxxx",`, 500) + `"y")`},
		{"control bytes", "price > 1 \x00\x01 AND"},
	}
	for _, tc := range filters {
		t.Run("filter "+tc.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"id": "ukbench00000", "filter": tc.filter})
			if strings.HasPrefix(tc.filter, "{") {
				body = []byte(`{"id":"ukbench00000","filter":` + tc.filter + `}`)
			}
			start := time.Now()
			r := do(t, "POST", ts.url+"/v1/collections/default/search", "application/json", bytes.NewReader(body))
			if r.status != 400 {
				t.Fatalf("search: status %d, want 400: %.300s", r.status, r.body)
			}
			if code := r.errorCode(t); code != "invalid_filter" && code != "bad_request" {
				t.Errorf("code %q", code)
			}
			q := do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00000/similar?filter="+url.QueryEscape(tc.filter), "", nil)
			if q.status != 400 && q.status != 414 && q.status != 431 {
				t.Errorf("similar: status %d: %.300s", q.status, q.body)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %s", took)
			}
		})
	}
	if r := do(t, "GET", ts.url+"/healthz", "", nil); r.status != 200 {
		t.Fatal("server unhealthy")
	}
}

// hostileEmbedder refuses every image: the batch and item parsers can be fuzzed without a model.
type hostileEmbedder struct{}

func (hostileEmbedder) Embed(_ context.Context, imgs []embed.Image) ([]embed.Embedding, error) {
	out := make([]embed.Embedding, len(imgs))
	for i := range out {
		out[i].Err = fmt.Errorf("%w: fuzz", embed.ErrCorrupt)
	}
	return out, nil
}

func (hostileEmbedder) Info() embed.Info {
	return embed.Info{ModelID: "fuzz", Fingerprint: "fuzz-000000000000", Dims: 4}
}

// FuzzParseItem feeds arbitrary bodies and content types to the single-item parser: it returns an
// *Error or an item whose id and metadata pass the API's rules, never panics.
func FuzzParseItem(f *testing.F) {
	f.Add("application/json", []byte(`{"id":"a","image":"/9j/4AAQ","metadata":{"k":1}}`))
	f.Add("application/json", []byte(`{"id":"../../etc/passwd","image":"data:image/png;base64,iVBORw0KGgo="}`))
	f.Add("application/json", []byte(`{"image":"@@@"}`))
	f.Add("multipart/form-data; boundary=XX", []byte("--XX\r\nContent-Disposition: form-data; name=\"image\"; filename=\"../a.jpg\"\r\n\r\n\xff\xd8\xff\r\n--XX\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"a\":[1,2]}\r\n--XX--\r\n"))
	f.Add("multipart/form-data; boundary=XX", []byte("--XX\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\na\x00b\r\n--XX--"))
	f.Add("text/plain", []byte("hello"))
	s := &Server{cfg: config.Default()}
	app := fiber.New()
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		c := app.AcquireCtx(&fasthttp.RequestCtx{})
		defer app.ReleaseCtx(c)
		c.Request().Header.SetContentType(contentType)
		c.Request().SetBody(body)
		req, err := s.parseItem(c)
		if err != nil {
			if classify(err).Code == "internal" {
				t.Fatalf("unclassified parser error %T: %v", err, err)
			}
			return
		}
		// No id is fine (the photo's content names the item); a given one must pass.
		if verr := validateID(req.ID, s.cfg.Limits.MaxIDBytes); req.ID != "" && verr != nil {
			t.Fatalf("accepted id %q: %v", req.ID, verr)
		}
		if req.Metadata != nil {
			var obj map[string]json.RawMessage
			if json.Unmarshal(req.Metadata, &obj) != nil || len(req.Metadata) > s.cfg.Limits.MaxMetadataBytes {
				t.Fatalf("accepted metadata %q", req.Metadata)
			}
		}
		if req.Image == nil {
			t.Fatal("accepted an item without an image")
		}
	})
}

// FuzzBatch posts arbitrary NDJSON and multipart bodies to the batch endpoint of a real server (with
// an embedder that refuses every image): the answer is always the JSON error shape or per-item
// results, never a 500.
func FuzzBatch(f *testing.F) {
	img := base64.StdEncoding.EncodeToString([]byte{0xff, 0xd8, 0xff})
	f.Add("application/x-ndjson", []byte(`{"id":"a","image":"`+img+`"}`+"\n"+`{"id":"b","image":"`+img+`","metadata":{"x":1}}`))
	f.Add("application/x-ndjson", []byte("{\"id\":\"a\"}\n\n{broken\n{\"id\":\"\\u0000\",\"image\":\""+img+"\"}"))
	f.Add("application/json", []byte(`[{"id":"a"}]`))
	f.Add("multipart/form-data; boundary=XX", []byte("--XX\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n\xff\xd8\xff\r\n--XX\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\nx\r\n--XX--\r\n"))
	f.Add("multipart/form-data", []byte("--XX--"))
	f.Add("multipart/form-data;boundary=0", []byte("0"))
	f.Add("", []byte(""))
	cfg := config.Default()
	cfg.Quality.RecallSampleRate = 0
	cfg.Limits.MaxBatchItems = 8
	db, err := index.Open(f.TempDir(), &index.Options{NoSync: true, SnapshotInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CreateCollection("default", index.CollectionConfig{Fingerprint: "fuzz-000000000000", Dims: 4}); err != nil {
		f.Fatal(err)
	}
	srv, err := New(cfg, hostileEmbedder{}, db, prometheus.NewRegistry(), nil)
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		req := httptest.NewRequest("POST", "/v1/collections/default/items:batch", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		resp, err := srv.App().Test(req, -1)
		if err != nil {
			// fiber's in-memory harness fails where fasthttp answers a malformed multipart body
			// itself and closes the connection; over a real socket that is a 400 JSON error.
			return
		}
		defer resp.Body.Close()
		var out map[string]json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("status %d with a body that is not JSON: %v", resp.StatusCode, err)
		}
		switch {
		case resp.StatusCode >= 500:
			t.Fatalf("status %d: %s", resp.StatusCode, out["error"])
		case resp.StatusCode == 200 && out["results"] == nil:
			t.Fatalf("200 without results")
		case resp.StatusCode != 200 && out["error"] == nil:
			t.Fatalf("%d without the error shape", resp.StatusCode)
		}
	})
}

// TestOverloadBoundsAdmittedLatency fires many image searches at a server allowed one inference at
// a time and two waiting: the excess is refused at once with 429 and Retry-After, every admitted
// request succeeds, and admitted latency stays near (queue + 1) inference times instead of growing
// with the number of callers. Timings are logged, not asserted (the machine is shared).
func TestOverloadBoundsAdmittedLatency(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) {
		c.Server.MaxInflightEmbeds, c.Server.MaxQueuedEmbeds = 1, 2
		c.Server.QueueWait = time.Minute // a slow machine must not turn waiting into 503s
	})
	seed(t, ts)
	img := photo(t, ukName(6))
	var single time.Duration
	for i := 0; i < 3; i++ {
		start := time.Now()
		if r, _ := ts.searchImage(t, img); r.status != 200 {
			t.Fatalf("warm-up: %d", r.status)
		}
		single = max(single, time.Since(start))
	}
	const callers = 24
	type outcome struct {
		status     int
		retryAfter string
		code       string
		first      string
		took       time.Duration
	}
	out := make([]outcome, callers)
	var wg sync.WaitGroup
	startAll := make(chan struct{})
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startAll
			start := time.Now()
			r, sr := searchNoKeepAlive(t, ts.url, img)
			o := outcome{status: r.status, retryAfter: r.header.Get("Retry-After"), took: time.Since(start)}
			if r.status == 200 && len(sr.Results) > 0 {
				o.first = sr.Results[0].ID
			} else if r.status != 200 {
				var e struct{ Error struct{ Code string } }
				json.Unmarshal(r.body, &e)
				o.code = e.Error.Code
			}
			out[i] = o
		}()
	}
	close(startAll)
	wg.Wait()
	var admitted, rejected int
	var worstAdmitted, worstRejected time.Duration
	for _, o := range out {
		switch o.status {
		case 200:
			admitted++
			worstAdmitted = max(worstAdmitted, o.took)
			if o.first != "ukbench00006" {
				t.Errorf("admitted search answered %q first", o.first)
			}
		case 429:
			rejected++
			worstRejected = max(worstRejected, o.took)
			if o.retryAfter == "" || o.code != "overloaded" {
				t.Errorf("429 without Retry-After or code overloaded: %+v", o)
			}
		default:
			t.Errorf("status %d (%s): only 200 and 429 are expected", o.status, o.code)
		}
	}
	if rejected == 0 || admitted < 3 {
		t.Fatalf("%d admitted, %d rejected: the queue bound did not apply", admitted, rejected)
	}
	t.Logf("%d callers, 1 slot + 2 queued: %d admitted (slowest %s), %d rejected with 429 (slowest %s); one search alone took %s (admitted/alone %.1fx)",
		callers, admitted, worstAdmitted.Round(time.Millisecond), rejected, worstRejected.Round(time.Millisecond), single.Round(time.Millisecond),
		float64(worstAdmitted)/float64(single))
}

// TestHostileJPEGLeavesDecoderUsable: a JPEG that libjpeg-turbo rejects must not leave the pooled
// decoder handle in a state that fails the next, valid JPEG (one bad upload would otherwise break
// JPEG decoding for every later request).
//
// It runs in a child process: the decoder handles are process-wide, so a failure here would
// otherwise break every later test of the package.
func TestHostileJPEGLeavesDecoderUsable(t *testing.T) {
	if os.Getenv("LOOKALIKE_HOSTILE_CHILD") != "1" {
		testEngine(t) // skip like the others when the model is missing
		cmd := exec.Command(os.Args[0], "-test.run", "^TestHostileJPEGLeavesDecoderUsable$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "LOOKALIKE_HOSTILE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("in a child process: %v\n%s", err, out)
		}
		return
	}
	ts := newTestServer(t, nil)
	seed(t, ts)
	good := photo(t, ukName(5))
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"65535x65535 header", jpegWithSize(65535, 65535)},
		{"zero height", jpegWithSize(16, 0)},
		{"jpeg magic + html", append([]byte{0xff, 0xd8, 0xff, 0xe0}, []byte("<html><script>alert(1)</script></html>")...)},
		{"truncated", good[:len(good)/3]},
		{"only SOI", []byte{0xff, 0xd8, 0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := ts.searchImage(t, tc.data)
			if r.status != 413 && r.status != 422 {
				t.Errorf("bad jpeg: %d %s (want 413 image_too_large or 422 corrupt_image)", r.status, r.body)
			}
			for i := 0; i < 3; i++ {
				if r, sr := ts.searchImage(t, good); r.status != 200 || sr.Results[0].ID != "ukbench00005" {
					t.Fatalf("valid jpeg after a rejected one: %d %s", r.status, r.body)
				}
			}
		})
	}
}

// searchNoKeepAlive sends an image search on a connection of its own, closed afterwards: a shared
// transport would leave spare, never-used connections open, which delay graceful shutdown (see
// TestShutdownClosesUnusedConnections).
func searchNoKeepAlive(t *testing.T, base string, img []byte) (response, searchResponse) {
	t.Helper()
	body, ct := multipartBody(t, part{"image", "q.jpg", img})
	req, err := http.NewRequest("POST", base+"/v1/collections/default/search", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	var sr searchResponse
	if r.status == http.StatusOK {
		r.json(t, &sr)
	}
	return r, sr
}

// TestShutdownClosesUnusedConnections: a client that opened a connection but has not sent a request
// on it yet (HTTP clients and load balancers pre-connect; Go's transport keeps spare dials) must not
// hold up graceful shutdown: Serve returns without error well within server.shutdown_timeout.
func TestShutdownClosesUnusedConnections(t *testing.T) {
	eng := testEngine(t)
	cfg := config.Default()
	cfg.Data.Dir = t.TempDir()
	cfg.Quality.RecallSampleRate = 0
	cfg.Server.ShutdownTimeout = 3 * time.Second
	db, err := index.Open(cfg.Data.Dir, &index.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv, err := New(cfg, eng, db, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	if r := do(t, "GET", "http://"+ln.Addr().String()+"/healthz", "", nil); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(100 * time.Millisecond) // accepted and waiting for its first request
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("graceful shutdown with a connection that never sent a request: %v after %s", err, time.Since(start).Round(time.Millisecond))
	}
	t.Logf("shut down in %s", time.Since(start).Round(time.Millisecond))
}
