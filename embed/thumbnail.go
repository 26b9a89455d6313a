package embed

import (
	"fmt"
	"math"

	"github.com/lookalike/lookalike/embed/spec"
)

// Thumbnail returns a JPEG (TurboJPEG) of the EXIF-oriented image whose longer side is at most
// maxSide (never enlarged), alpha composited on white: the stored thumbnails, and the larger
// source renditions kept to embed a catalog again. quality <= 0 means
// spec.DefaultThumbnailQuality; maxPixels <= 0 means spec.DefaultMaxPixels. The aspect ratio is
// not limited here (Engine.Embed refuses extreme ones first); the resize's memory does not depend
// on it.
func Thumbnail(data []byte, maxSide, quality int, maxPixels int64) (out []byte, err error) {
	defer guard(&err)
	if maxSide <= 0 {
		return nil, fmt.Errorf("embed: thumbnail max side %d must be positive", maxSide)
	}
	if quality <= 0 || quality > 100 {
		quality = spec.DefaultThumbnailQuality
	}
	want := func(_ Config, r Rect) float64 { return math.Min(1, float64(maxSide)/float64(max(r.W, r.H))) }
	d, err := decodeImage(data, nil, limits{pixels: maxPixels}, want)
	if err != nil {
		return nil, err
	}
	s := want(d.cfg, Rect{W: d.cfg.Width, H: d.cfg.Height})
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
	dst := &rgbImage{w: ow, h: oh, pix: make([]byte, ow*oh*3)}
	resample(src, &xw, &yw, func(y int, acc []float32) {
		o := dst.pix[y*ow*3 : (y+1)*ow*3]
		for x, v := range acc {
			o[x] = byte(min(255, max(0, v+0.5)))
		}
	})
	return dst
}
