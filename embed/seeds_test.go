package embed

import (
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzDecode with LOOKALIKE_WRITE_SEEDS=1: one tiny
// file per format and pixel type, made here (never copies of the shared datasets).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("LOOKALIKE_WRITE_SEEDS") == "" {
		t.Skip("set LOOKALIKE_WRITE_SEEDS=1 to regenerate the fuzz seed corpus")
	}
	m := image.NewNRGBA(image.Rect(0, 0, 12, 9))
	for y := 0; y < 9; y++ {
		for x := 0; x < 12; x++ {
			m.SetNRGBA(x, y, color.NRGBA{uint8(20 * x), uint8(25 * y), 128, uint8(255 - 10*x)})
		}
	}
	gray := image.NewGray16(m.Bounds())
	for y := 0; y < 9; y++ {
		for x := 0; x < 12; x++ {
			gray.SetGray16(x, y, color.Gray16{uint16(5000 * x)})
		}
	}
	rgb := toRGB(m)
	webpL, _ := webpEncodeRGBA(m.Pix, 12, 9)
	webpY, _ := webpEncodeRGB(rgb, 50)
	cmykPix := make([]byte, 12*9*4)
	for i := range cmykPix {
		cmykPix[i] = byte(i * 7)
	}
	cmyk, _ := turboEncodeCMYK(cmykPix, 12, 9)
	jpg := encode(t, "jpeg", m)
	seeds := map[string][]byte{
		"jpeg":                jpg,
		"jpeg-exif6":          exifJPEG(jpg, 6, false),
		"jpeg-exif8m":         exifJPEG(jpg, 8, true),
		"jpeg-cmyk":           cmyk,
		"jpeg-trunc":          jpg[:len(jpg)/2],
		"jpeg-huge":           hugeJPEG(t, jpg, 65000, 65000),
		"png-nrgba":           encode(t, "png", m),
		"png-gray16":          encode(t, "png", gray),
		"png-huge":            hugePNG(70000, 70000),
		"gif":                 encode(t, "gif", m),
		"bmp":                 encode(t, "bmp", m),
		"tiff":                encode(t, "tiff", m),
		"webp-lossless-alpha": webpL,
		"webp-lossy":          webpY,
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint16(%d)\nuint16(%d)\n", b, 6, 5)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
