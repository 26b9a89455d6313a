package embed

import (
	"fmt"
	"math"
)

// Thumbnail returns a JPEG (TurboJPEG) of the EXIF-oriented image whose longer side is at most
// maxSide (never enlarged), alpha composited on white. quality <= 0 means 80.
func Thumbnail(data []byte, maxSide, quality int, maxPixels int64) (out []byte, err error) {
	defer guard(&err)
	if maxSide <= 0 {
		return nil, fmt.Errorf("embed: thumbnail max side %d must be positive", maxSide)
	}
	if quality <= 0 || quality > 100 {
		quality = 80
	}
	want := func(cw, ch int) float64 { return math.Min(1, float64(maxSide)/float64(max(cw, ch))) }
	d, err := decodeImage(data, nil, maxPixels, want)
	if err != nil {
		return nil, err
	}
	s := want(d.cfg.Width, d.cfg.Height)
	ow := max(1, int(math.Round(float64(d.cfg.Width)*s)))
	oh := max(1, int(math.Round(float64(d.cfg.Height)*s)))
	img := d.img
	if ow != img.w || oh != img.h {
		img = resizeRGB(img, d.box, ow, oh)
	}
	return turboEncode(img, quality)
}

// resizeRGB resamples box of src to ow x oh 8-bit RGB with the same filter as the tensor path.
func resizeRGB(src *rgbImage, box [4]float64, ow, oh int) *rgbImage {
	sx, sy := float64(ow)/(box[2]-box[0]), float64(oh)/(box[3]-box[1])
	xw := makeWeights(ow, box[0], box[2], sx, 0, src.w)
	yw := makeWeights(oh, box[1], box[3], sy, 0, src.h)
	tmp := make([]float32, src.h*ow*3)
	for y := 0; y < src.h; y++ {
		row := src.pix[y*src.w*3 : (y+1)*src.w*3]
		t := tmp[y*ow*3 : (y+1)*ow*3]
		for x := 0; x < ow; x++ {
			st, n := xw.start[x], xw.n[x]
			var r, g, b float32
			for k, w := range xw.w[x*xw.taps : x*xw.taps+n] {
				p := row[(st+k)*3:]
				r += w * float32(p[0])
				g += w * float32(p[1])
				b += w * float32(p[2])
			}
			t[3*x], t[3*x+1], t[3*x+2] = r, g, b
		}
	}
	dst := &rgbImage{w: ow, h: oh, pix: make([]byte, ow*oh*3)}
	for y := 0; y < oh; y++ {
		st, n := yw.start[y], yw.n[y]
		ws := yw.w[y*yw.taps : y*yw.taps+n]
		for x := 0; x < ow*3; x++ {
			var v float32
			for k, w := range ws {
				v += w * tmp[(st+k)*ow*3+x]
			}
			dst.pix[y*ow*3+x] = byte(min(255, max(0, v+0.5)))
		}
	}
	return dst
}
