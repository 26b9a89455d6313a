package embed

import (
	"fmt"
	"math"
	"testing"

	"github.com/lookalike/lookalike/embed/spec"
)

// ramp is a w x h image whose red channel rises linearly with x, green with y, blue constant.
func ramp(w, h int) *rgbImage {
	img := &rgbImage{w: w, h: h, pix: make([]byte, w*h*3)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := 3 * (y*w + x)
			img.pix[i] = byte(x * 255 / (w - 1))
			img.pix[i+1] = byte(y * 255 / (h - 1))
			img.pix[i+2] = 77
		}
	}
	return img
}

// TestPreprocessGeometry: a normalised symmetric filter reproduces a linear ramp, so every tensor
// value can be predicted from the resize/crop arithmetic: this pins scale, centre-crop offsets,
// crop boxes, channel order, layout and normalisation.
func TestPreprocessGeometry(t *testing.T) {
	const W, H = 640, 480
	img := ramp(W, H)
	cases := []struct {
		name  string
		edit  func(*spec.Model)
		box   [4]float64
		scale func(s spec.Model, bw, bh float64) (sx, sy float64, ox, oy int)
	}{
		{"center 256/224", func(*spec.Model) {}, [4]float64{0, 0, W, H}, nil},
		{"center BGR NHWC", func(s *spec.Model) { s.ChannelOrder, s.Layout = "BGR", "NHWC" }, [4]float64{0, 0, W, H}, nil},
		{"squash", func(s *spec.Model) { s.Crop = "squash" }, [4]float64{0, 0, W, H}, nil},
		{"center on a crop box", func(*spec.Model) {}, [4]float64{100, 50, 500, 450}, nil},
		{"upscale small crop", func(s *spec.Model) { s.ResizeShorter = 0 }, [4]float64{300, 200, 400, 300}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := spec.DefaultModel()
			c.edit(&s)
			S := s.InputSize
			buf := make([]float32, s.TensorLen())
			preprocessInto(s, buf, decoded{img: img, box: c.box})
			bw, bh := c.box[2]-c.box[0], c.box[3]-c.box[1]
			var sx, sy float64
			ox, oy := 0, 0
			if s.Crop == "squash" {
				sx, sy = float64(S)/bw, float64(S)/bh
			} else {
				sc := float64(s.ResizeTarget()) / math.Min(bw, bh)
				sx, sy = sc, sc
				ox = (max(S, int(math.Round(bw*sc))) - S) / 2
				oy = (max(S, int(math.Round(bh*sc))) - S) / 2
			}
			at := func(x, y, c int) float32 {
				if s.Layout == "NHWC" {
					return buf[(y*S+x)*3+c]
				}
				return buf[c*S*S+y*S+x]
			}
			worst := 0.0
			// stay away from the box edges, where clamping breaks linearity
			for _, p := range [][2]int{{S / 2, S / 2}, {20, 30}, {S - 20, S - 30}, {60, S - 60}} {
				x, y := p[0], p[1]
				cx := c.box[0] + (float64(x+ox)+0.5)/sx - 0.5 // source pixel index
				cy := c.box[1] + (float64(y+oy)+0.5)/sy - 0.5
				rgb := [3]float64{cx*255/(W-1) - 0.5, cy*255/(H-1) - 0.5, 77} // -0.5: the ramp's bytes are truncated
				for ch := 0; ch < 3; ch++ {
					src := ch
					if s.ChannelOrder == "BGR" {
						src = 2 - ch
					}
					want := (rgb[src]/255 - float64(s.Mean[ch])) / float64(s.Std[ch])
					d := math.Abs(float64(at(x, y, ch)) - want)
					worst = math.Max(worst, d)
					if d > 0.008 { // under half a grey level: one output pixel of misplacement costs 0.013-0.017
						t.Errorf("(%d,%d) channel %d = %.4f, want %.4f", x, y, ch, at(x, y, ch), want)
					}
				}
			}
			t.Logf("worst deviation %.4f", worst)
		})
	}
}

// TestOrient: each EXIF orientation maps a 3x2 picture to its upright form.
func TestOrient(t *testing.T) {
	// stored pixels, labelled by value: row-major 3x2
	src := &rgbImage{w: 3, h: 2}
	for i := 0; i < 6; i++ {
		src.pix = append(src.pix, byte(i), 0, 0)
	}
	// upright results (red values, row-major) per orientation, as displayed by viewers
	want := map[int]struct {
		w, h int
		v    []byte
	}{
		1: {3, 2, []byte{0, 1, 2, 3, 4, 5}},
		2: {3, 2, []byte{2, 1, 0, 5, 4, 3}},
		3: {3, 2, []byte{5, 4, 3, 2, 1, 0}},
		4: {3, 2, []byte{3, 4, 5, 0, 1, 2}},
		5: {2, 3, []byte{0, 3, 1, 4, 2, 5}},
		6: {2, 3, []byte{3, 0, 4, 1, 5, 2}},
		7: {2, 3, []byte{5, 2, 4, 1, 3, 0}},
		8: {2, 3, []byte{2, 5, 1, 4, 0, 3}},
	}
	for o := 1; o <= 8; o++ {
		t.Run(fmt.Sprint(o), func(t *testing.T) {
			cp := &rgbImage{w: 3, h: 2, pix: append([]byte(nil), src.pix...)}
			got := orient(cp, o)
			var v []byte
			for i := 0; i < len(got.pix); i += 3 {
				v = append(v, got.pix[i])
			}
			w := want[o]
			if got.w != w.w || got.h != w.h || fmt.Sprint(v) != fmt.Sprint(w.v) {
				t.Errorf("orientation %d: %dx%d %v, want %dx%d %v", o, got.w, got.h, v, w.w, w.h, w.v)
			}
		})
	}
}
