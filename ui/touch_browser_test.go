package ui_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// phone makes b a 390×844 touch screen.
func (b *browser) phone() {
	b.do("phone viewport", 10*time.Second, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch))
}

// touchDrag drags one finger from (x0, y0) to (x1, y1) in steps.
func (b *browser) touchDrag(x0, y0, x1, y1 float64) {
	b.t.Helper()
	b.do("touch drag", 15*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		send := func(typ input.DispatchTouchEventType, x, y float64) error {
			id := 1.0
			pts := []*input.TouchPoint{{X: x, Y: y, ID: &id}}
			if typ == input.DispatchTouchEventTypeTouchEnd {
				pts = []*input.TouchPoint{}
			}
			_, err := cdp.Call(ctx, tg, input.DispatchTouchEvent, input.DispatchTouchEventParams{Type: typ, TouchPoints: pts})
			return err
		}
		if err := send(input.DispatchTouchEventTypeTouchStart, x0, y0); err != nil {
			return err
		}
		for i := 1; i <= 8; i++ {
			f := float64(i) / 8
			if err := send(input.DispatchTouchEventTypeTouchMove, x0+(x1-x0)*f, y0+(y1-y0)*f); err != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
		return send(input.DispatchTouchEventTypeTouchEnd, x1, y1)
	}))
}

// TestTouchCropMode: on a phone, results show on the first screen after a search; a swipe over the
// query photo scrolls the page and draws no region; "Select a region" then a drag searches a region.
func TestTouchCropMode(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t, s.URL)
	b.phone()
	// Results come first, with close matches and without (the "no close match" heading).
	for _, photo := range []int{4*(seedGroups+10) + 3, 4*5 + 3} {
		b.searchFor(s.photo(photo))
		b.wait("results settled", `!document.querySelector('#results[aria-busy]') && document.querySelector('.stage-img').naturalWidth > 0`, 30*time.Second)
		b.do("top", 5*time.Second, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
		if bottom, h := eval[float64](b, `document.querySelector('#results .card, #weak-results .card').getBoundingClientRect().bottom`), eval[float64](b, `window.innerHeight`); bottom > h {
			t.Errorf("photo %d: the first result ends at %.0f px, below the first %0.f px phone screen: results must come first", photo, bottom, h)
		}
	}
	summary := b.text("#results-summary")

	// A swipe up over the photo scrolls the page.
	r := b.rect(".stage-img")
	b.touchDrag(r.X+r.W*0.4, r.Y+r.H*0.9, r.X+r.W*0.55, r.Y+r.H*0.1) // a little diagonal, as thumbs swipe
	time.Sleep(500 * time.Millisecond)
	if y := eval[float64](b, `window.scrollY`); y <= 0 {
		t.Errorf("a swipe over the query photo did not scroll the page (scrollY %.0f)", y)
	}
	if info := b.text("#crop-info"); strings.Contains(info, "region:") || b.text("#results-summary") != summary {
		t.Errorf("a swipe drew a region: crop info %q, summary %q (was %q)", info, b.text("#results-summary"), summary)
	}

	// Crop mode: the button, then a drag draws the region and searches it.
	b.do("top", 5*time.Second, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	b.do("crop mode", 10*time.Second, chromedp.Click(chromedp.CSS("#crop-mode")))
	if pressed := eval[string](b, `document.querySelector('#crop-mode').getAttribute('aria-pressed')`); pressed != "true" {
		t.Errorf("crop mode button aria-pressed=%s", pressed)
	}
	r = b.rect(".stage-img")
	b.touchDrag(r.X+r.W*0.2, r.Y+r.H*0.2, r.X+r.W*0.8, r.Y+r.H*0.8)
	b.wait("region results", `document.querySelector('#results-summary').textContent.includes('region') && !document.querySelector('#results[aria-busy]')`, 60*time.Second)
	if info := b.text("#crop-info"); !strings.Contains(info, "Searching a region") {
		t.Errorf("crop info %q after a drag in crop mode", info)
	}
	if pressed := eval[string](b, `document.querySelector('#crop-mode').getAttribute('aria-pressed')`); pressed != "false" {
		t.Errorf("crop mode still on after the region was drawn (aria-pressed=%s): swipes would not scroll", pressed)
	}
	b.noConsoleProblems()
}

// orientedJPEG is a w×h JPEG, left half red and right half blue, with EXIF orientation o.
func orientedJPEG(t *testing.T, w, h int, o uint16) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{220, 20, 20, 255}
			if x >= w/2 {
				c = color.RGBA{20, 20, 220, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	// APP1 Exif: big-endian TIFF header, one IFD with one entry (0x0112 Orientation, SHORT).
	tiff := []byte{'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(tiff[18:], o)
	payload := append([]byte("Exif\x00\x00"), tiff...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	jpg := buf.Bytes()
	return append(append(append([]byte{}, jpg[:2]...), append(seg, payload...)...), jpg[2:]...)
}

// TestShrinkBeforeUpload: a 3000×2000 photo with EXIF orientation 6 (turn 90° clockwise) is sent
// as an upright JPEG of at most 1600 px: the photo the server kept is 1067×1600, red on top.
func TestShrinkBeforeUpload(t *testing.T) {
	s := startServer(t)
	path := filepath.Join(t.TempDir(), "phone-photo.jpg")
	if err := os.WriteFile(path, orientedJPEG(t, 3000, 2000, 6), 0o644); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, s.URL)
	b.searchFor(path)
	b.wait("kept photo in the URL", `location.hash.includes('photo=')`, 15*time.Second)
	hash := eval[string](b, `location.hash`)
	q, err := url.ParseQuery(hash[strings.Index(hash, "?")+1:])
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.URL + "/v1/photos/" + url.PathEscape(q.Get("photo")))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the photo the server kept (HTTP %d, %d bytes): %v", resp.StatusCode, len(data), err)
	}
	bnd := img.Bounds()
	if bnd.Dx() > 1600 || bnd.Dy() > 1600 || bnd.Dy() < bnd.Dx() {
		t.Errorf("uploaded photo is %dx%d; want at most 1600 px and portrait (orientation applied)", bnd.Dx(), bnd.Dy())
	}
	red := func(c color.Color) bool { r, _, bl, _ := c.RGBA(); return r > 2*bl }
	if top, bottom := img.At(bnd.Dx()/2, bnd.Dy()/8), img.At(bnd.Dx()/2, bnd.Dy()*7/8); !red(top) || red(bottom) {
		t.Errorf("uploaded photo is not upright: top %v, bottom %v; want red on top (EXIF orientation 6)", top, bottom)
	}
	if n := len(data); n > 1<<20 {
		t.Errorf("uploaded photo is %d bytes", n)
	}
	t.Logf("3000x2000 photo sent as %dx%d, %d KB", bnd.Dx(), bnd.Dy(), len(data)/1024)
	b.noConsoleProblems()
}
