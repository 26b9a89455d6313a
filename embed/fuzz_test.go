package embed

import (
	"errors"
	"testing"

	"github.com/lookalike/lookalike/embed/spec"
)

// FuzzDecode drives the decode entry points (header, full decode with a crop, preprocessing,
// thumbnail) with arbitrary bytes: they must return one of the package's errors, never panic or
// allocate beyond the pixel limit. Seeds: testdata/fuzz/FuzzDecode (small generated files).
func FuzzDecode(f *testing.F) {
	f.Add([]byte{}, uint16(0), uint16(0))
	f.Add([]byte("not an image"), uint16(1), uint16(1))
	ms := spec.DefaultModel()
	buf := make([]float32, ms.TensorLen())
	const limit = 4 << 20 // keep each input cheap
	f.Fuzz(func(t *testing.T, data []byte, cw, ch uint16) {
		cfg, err := DecodeConfig(data)
		if err != nil {
			if !isPackageErr(err) {
				t.Fatalf("DecodeConfig: untyped error %v", err)
			}
			return
		}
		if cfg.Width <= 0 || cfg.Height <= 0 {
			t.Fatalf("DecodeConfig accepted size %dx%d", cfg.Width, cfg.Height)
		}
		var crop *Rect
		if cw > 0 && ch > 0 {
			crop = &Rect{X: 0, Y: 0, W: int(cw), H: int(ch)}
		}
		d, err := decodeImage(data, crop, limits{pixels: limit, aspect: spec.DefaultMaxAspectRatio}, wantScale(ms))
		if err != nil {
			if !isPackageErr(err) {
				t.Fatalf("decode: untyped error %v", err)
			}
			return
		}
		if d.img.w*d.img.h*3 != len(d.img.pix) || d.img.w <= 0 || d.img.h <= 0 {
			t.Fatalf("decoded %dx%d with %d bytes", d.img.w, d.img.h, len(d.img.pix))
		}
		preprocessInto(ms, buf, d)
		for _, v := range buf {
			if v != v || v > 10 || v < -10 {
				t.Fatalf("tensor value %v out of range", v)
			}
		}
		if _, err := Thumbnail(data, 64, 70, limit); err != nil && !isPackageErr(err) {
			t.Fatalf("Thumbnail: untyped error %v", err)
		}
	})
}

func isPackageErr(err error) bool {
	for _, s := range []error{ErrEmpty, ErrNotImage, ErrUnsupported, ErrCorrupt, ErrTooLarge, ErrAspectRatio, ErrBadCrop} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
