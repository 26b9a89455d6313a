package bench

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	_ "image/gif" // the baseline decodes what the engine decodes, with Go's decoders
	_ "image/jpeg"
	_ "image/png"
	"math"

	_ "golang.org/x/image/bmp"
	xdraw "golang.org/x/image/draw"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"github.com/lookalike/lookalike/embed/spec"
)

// StdlibTensor is the baseline of `bench embed`: the input tensor of one image made the way a Go
// program would without embed: image.Decode (image/jpeg and friends), x/image/draw bilinear resize
// of the shorter side (both sides with Crop "squash"), centre crop, then the spec's normalisation
// and layout, into dst (m.TensorLen() values). EXIF orientation is ignored.
func StdlibTensor(dst []float32, data []byte, m spec.Model) error {
	src, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("bench: stdlib decode: %w", err)
	}
	b := src.Bounds()
	S := m.InputSize
	sc := float64(m.ResizeTarget()) / float64(min(b.Dx(), b.Dy()))
	rw, rh := max(S, int(math.Round(float64(b.Dx())*sc))), max(S, int(math.Round(float64(b.Dy())*sc)))
	if m.Crop == "squash" {
		rw, rh = S, S
	}
	rs := image.NewRGBA(image.Rect(0, 0, rw, rh))
	xdraw.BiLinear.Scale(rs, rs.Bounds(), src, b, draw.Src, nil)
	ox, oy := (rw-S)/2, (rh-S)/2
	for c := 0; c < 3; c++ {
		ch := c
		if m.ChannelOrder == "BGR" {
			ch = 2 - c
		}
		scale, bias := 1/(255*m.Std[c]), -m.Mean[c]/m.Std[c]
		for y := 0; y < S; y++ {
			row := rs.Pix[(y+oy)*rs.Stride+ox*4:]
			for x := 0; x < S; x++ {
				i := c*S*S + y*S + x // NCHW
				if m.Layout == "NHWC" {
					i = (y*S+x)*3 + c
				}
				dst[i] = float32(row[4*x+ch])*scale + bias
			}
		}
	}
	return nil
}
