package api

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
)

// grayPNG is a complete, valid w×h 8-bit grayscale PNG (black): rows of zeros compress about
// 1000:1, so 1×50 000 000 pixels take about 130 KB.
func grayPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 8, 0 // 8-bit grey
	pngChunk(&buf, "IHDR", ihdr)
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, zlib.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	raw := int64(h) * int64(w+1) // a filter byte and w samples per row
	zeros := make([]byte, 1<<20)
	for raw > 0 {
		n := min(raw, int64(len(zeros)))
		zw.Write(zeros[:n])
		raw -= n
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	pngChunk(&buf, "IDAT", z.Bytes())
	pngChunk(&buf, "IEND", nil)
	return buf.Bytes()
}

// procKB reads a "VmXXX:   123 kB" line of /proc/self/status.
func procKB(t testing.TB, field string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Skipf("no %s in /proc/self/status", field)
	return 0
}

// peakGrowth runs fn and returns how far the process's resident memory rose above its level
// before fn, in bytes: the kernel's high-water mark (VmHWM), reset first through clear_refs.
func peakGrowth(t testing.TB, fn func()) int64 {
	t.Helper()
	debug.FreeOSMemory() // start from the live heap, not from what earlier tests left unreturned
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS: %v", err)
	}
	before := procKB(t, "VmRSS")
	fn()
	return (procKB(t, "VmHWM") - before) << 10
}

// TestExtremeAspectRatio: images far wider or taller than limits.max_aspect_ratio (1 × 50 000 000
// and 50 000 000 × 1 pixel PNGs of about 130 KB, which once cost 0.9-1.4 GB of RSS in the
// thumbnail resize) are refused from their header with 422 extreme_aspect_ratio, as new items and
// as searches, and nothing is stored; an image at the limit is stored. The peak RSS growth of each
// request stays under the per-image bound README documents (Configuration, memory per image):
// 11 bytes per decoded pixel plus 12 per resized output pixel and a few MB of filter weights
// (counted as 4), nothing for a refused header; the test allows 48 MB on top for the request itself
// and GC headroom.
func TestExtremeAspectRatio(t *testing.T) {
	ts := newTestServer(t, nil)
	const allowance = 48 << 20
	thumbPixels := int64(ts.cfg.Limits.ThumbnailSize) * int64(ts.cfg.Limits.ThumbnailSize)
	cases := []struct {
		name   string
		w, h   int
		status int
		code   string
	}{
		{"1x50M", 1, 50_000_000, http.StatusUnprocessableEntity, "extreme_aspect_ratio"},
		{"50Mx1", 50_000_000, 1, http.StatusUnprocessableEntity, "extreme_aspect_ratio"},
		{"33:1", 33 * 64, 64, http.StatusUnprocessableEntity, "extreme_aspect_ratio"},
		{"32:1 at the limit", 8192, 256, http.StatusCreated, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := grayPNG(t, tc.w, tc.h)
			bound := int64(allowance)
			if tc.status < 400 {
				bound += 11*int64(tc.w)*int64(tc.h) + 12*(224*224+thumbPixels) + 4<<20
			}
			for _, endpoint := range []string{"items", "search"} {
				id := fmt.Sprintf("aspect-%d", i)
				parts := []part{{"image", "x.png", img}}
				if endpoint == "items" {
					parts = append(parts, part{"id", "", []byte(id)})
				}
				var r response
				grew := peakGrowth(t, func() {
					body, ct := multipartBody(t, parts...)
					r = do(t, "POST", ts.url+"/v1/collections/default/"+endpoint, ct, body)
				})
				want := tc.status
				if endpoint == "search" && want < 400 {
					want = http.StatusOK
				}
				if r.status != want {
					t.Errorf("%s: status %d, want %d: %.300s", endpoint, r.status, want, r.body)
				} else if want >= 400 {
					if code := r.errorCode(t); code != tc.code {
						t.Errorf("%s: code %q, want %q", endpoint, code, tc.code)
					}
				}
				if grew > bound {
					t.Errorf("%s: peak RSS grew %.1f MB for a %d-byte %dx%d PNG, bound %.1f MB", endpoint,
						float64(grew)/(1<<20), len(img), tc.w, tc.h, float64(bound)/(1<<20))
				}
				t.Logf("%s: %d, %d-byte file, peak RSS +%.1f MB (bound %.1f MB)", endpoint, r.status, len(img),
					float64(grew)/(1<<20), float64(bound)/(1<<20))
				if endpoint == "items" {
					g := do(t, "GET", ts.url+"/v1/collections/default/items/"+id, "", nil)
					if stored := g.status == http.StatusOK; stored != (tc.status < 400) {
						t.Errorf("item stored: %v (GET %d), want %v", stored, g.status, tc.status < 400)
					}
				}
			}
		})
	}
}
