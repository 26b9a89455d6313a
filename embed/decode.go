package embed

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"io"
	"strings"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"github.com/lookalike/lookalike/embed/spec"
)

// Config is what an image header says, with the size after EXIF orientation.
type Config struct {
	Format        string `json:"format"` // "jpeg", "png", "gif", "webp", "bmp", "tiff"
	Width, Height int
	// Orientation is the EXIF orientation (1..8) already applied to Width/Height.
	Orientation int `json:"orientation"`
}

// Rect is a rectangle in pixels of the EXIF-oriented image.
type Rect struct{ X, Y, W, H int }

// rgbImage is packed 8-bit RGB, stride 3*w: the only pixel form the hot path knows.
type rgbImage struct {
	w, h int
	pix  []byte
}

func sniff(data []byte) string {
	switch {
	case len(data) >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF:
		return "jpeg"
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return "gif"
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "webp"
	case bytes.HasPrefix(data, []byte("BM")) && len(data) >= 26:
		return "bmp"
	case bytes.HasPrefix(data, []byte("II*\x00")), bytes.HasPrefix(data, []byte("MM\x00*")):
		return "tiff"
	}
	return ""
}

// DecodeConfig reads only the header: format and EXIF-oriented size.
func DecodeConfig(data []byte) (cfg Config, err error) {
	defer guard(&err)
	if len(data) == 0 {
		return Config{}, ErrEmpty
	}
	f := sniff(data)
	cfg = Config{Format: f, Orientation: 1}
	switch f {
	case "":
		return Config{}, ErrNotImage
	case "jpeg":
		hdr, err := turboHeader(data)
		if err != nil {
			return Config{}, err
		}
		cfg.Width, cfg.Height = hdr.w, hdr.h
		cfg.Orientation = scanJPEGMeta(data).orientation
	default:
		var c image.Config
		var err error
		r := bytes.NewReader(data)
		switch f {
		case "png":
			c, err = png.DecodeConfig(r)
			cfg.Orientation = pngOrientation(data)
		case "gif":
			c, err = gif.DecodeConfig(r)
		case "webp":
			c.Width, c.Height, _, err = webpConfig(data)
			cfg.Orientation = webpOrientation(data)
		case "bmp":
			c, err = bmp.DecodeConfig(r)
		case "tiff":
			c, err = tiff.DecodeConfig(r)
			if o := tiffOrientation(data); o != 0 {
				cfg.Orientation = o
			}
		}
		if err != nil {
			if f == "webp" {
				return Config{}, err
			}
			return Config{}, classify(f, err)
		}
		if c.Width <= 0 || c.Height <= 0 {
			return Config{}, fmt.Errorf("%w: %s: size %dx%d", ErrCorrupt, f, c.Width, c.Height)
		}
		cfg.Width, cfg.Height = c.Width, c.Height
	}
	if cfg.Orientation >= 5 {
		cfg.Width, cfg.Height = cfg.Height, cfg.Width
	}
	return cfg, nil
}

// classify turns a Go decoder error into one of the package's sentinels.
func classify(format string, err error) error {
	var pngU png.UnsupportedError
	var tiffU tiff.UnsupportedError
	switch {
	case errors.As(err, &pngU), errors.As(err, &tiffU), errors.Is(err, bmp.ErrUnsupported),
		strings.Contains(strings.ToLower(err.Error()), "unsupported"):
		return fmt.Errorf("%w: %s: %v", ErrUnsupported, format, err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%w: %s: truncated: %v", ErrCorrupt, format, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, format, err)
}

// guard converts a panic inside a third-party decoder into ErrCorrupt: no panic crosses the package.
func guard(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: decoder panic: %v", ErrCorrupt, r)
	}
}

// limits are the checks an image header must pass before any pixel is decoded.
type limits struct {
	pixels int64   // <= 0: spec.DefaultMaxPixels
	aspect float64 // longer side / shorter side; <= 0: not checked
}

func (l limits) check(cfg Config) error {
	maxPixels := l.pixels
	if maxPixels <= 0 {
		maxPixels = spec.DefaultMaxPixels
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return fmt.Errorf("%w: %dx%d %s exceeds %d pixels", ErrTooLarge, cfg.Width, cfg.Height, cfg.Format, maxPixels)
	}
	long, short := max(cfg.Width, cfg.Height), min(cfg.Width, cfg.Height)
	if l.aspect > 0 && float64(long) > l.aspect*float64(short) {
		return fmt.Errorf("%w: %dx%d %s is %.0f:1, the limit is %g:1", ErrAspectRatio, cfg.Width, cfg.Height, cfg.Format,
			float64(long)/float64(short), l.aspect)
	}
	return nil
}

// decoded is an oriented RGB picture, possibly DCT-downscaled, and the box (in its pixels) that
// corresponds to the requested crop.
type decoded struct {
	cfg        Config // full-resolution oriented header
	img        *rgbImage
	box        [4]float64 // x0, y0, x1, y1 within img
	scaleNum   int
	scaleDenom int
}

// release hands the pixel buffer back for reuse; d must not be used afterwards.
func (d *decoded) release() {
	if d.img != nil {
		putBytes(d.img.pix)
		d.img = nil
	}
}

// decodeImage decodes data for a consumer that needs at least scale want(cfg, crop) of the
// full-resolution crop (JPEG uses the smallest DCT scale that still meets it). lim guards every
// format before any pixel is decoded.
func decodeImage(data []byte, crop *Rect, lim limits, want func(cfg Config, r Rect) float64) (d decoded, err error) {
	defer guard(&err)
	cfg, err := DecodeConfig(data)
	if err != nil {
		return decoded{}, err
	}
	if err := lim.check(cfg); err != nil {
		return decoded{}, err
	}
	r := Rect{0, 0, cfg.Width, cfg.Height}
	if crop != nil {
		r = *crop
		if r.W <= 0 || r.H <= 0 || r.X < 0 || r.Y < 0 || r.X > cfg.Width-r.W || r.Y > cfg.Height-r.H {
			return decoded{}, fmt.Errorf("%w: %+v outside %dx%d", ErrBadCrop, r, cfg.Width, cfg.Height)
		}
	}
	d = decoded{cfg: cfg, scaleNum: 1, scaleDenom: 1}
	var img *rgbImage
	if cfg.Format == "jpeg" {
		hdr, err := turboHeader(data)
		if err != nil {
			return decoded{}, err
		}
		need := want(cfg, r)
		f := scaleFactor{1, 1}
		for _, sf := range jpegScales {
			// scaled crop must keep at least the needed size; TJSCALED rounds up, so check both sides
			sw, sh := float64(sf.apply(cfg.Width)), float64(sf.apply(cfg.Height))
			if sw/float64(cfg.Width) >= need-1e-9 && sh/float64(cfg.Height) >= need-1e-9 &&
				float64(sf.num)/float64(sf.den) >= need-1e-9 {
				f = sf
				break
			}
		}
		meta := scanJPEGMeta(data)
		img, err = turboDecode(data, hdr, f, meta)
		if err != nil {
			return decoded{}, err
		}
		d.scaleNum, d.scaleDenom = f.num, f.den
	} else {
		img, err = decodeGo(cfg.Format, data)
		if err != nil {
			return decoded{}, err
		}
	}
	img = orient(img, cfg.Orientation)
	sx := float64(img.w) / float64(cfg.Width)
	sy := float64(img.h) / float64(cfg.Height)
	d.img = img
	d.box = [4]float64{float64(r.X) * sx, float64(r.Y) * sy, float64(r.X+r.W) * sx, float64(r.Y+r.H) * sy}
	return d, nil
}

func decodeGo(format string, data []byte) (*rgbImage, error) {
	var m image.Image
	var err error
	r := bytes.NewReader(data)
	switch format {
	case "png":
		m, err = png.Decode(r)
	case "gif":
		m, err = gif.Decode(r) // first frame
	case "webp":
		w, h, alpha, err := webpConfig(data)
		if err != nil {
			return nil, err
		}
		return webpDecode(data, w, h, alpha)
	case "bmp":
		m, err = bmp.Decode(r)
	case "tiff":
		m, err = tiff.Decode(r)
	default:
		return nil, ErrNotImage
	}
	if err != nil {
		return nil, classify(format, err)
	}
	if m.Bounds().Empty() {
		return nil, fmt.Errorf("%w: %s: empty image", ErrCorrupt, format)
	}
	return toRGB(m), nil
}

// toRGB flattens any image.Image to 8-bit RGB, compositing alpha on white, with fast paths for the
// types the decoders return.
func toRGB(m image.Image) *rgbImage {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	out := &rgbImage{w: w, h: h, pix: make([]byte, w*h*3)}
	p := out.pix
	switch s := m.(type) {
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := s.Pix[(y)*s.Stride : (y)*s.Stride+4*w]
			o := p[y*w*3:]
			for x := 0; x < w; x++ {
				a := uint32(row[4*x+3])
				o[3*x] = byte((uint32(row[4*x])*a + 255*(255-a) + 127) / 255)
				o[3*x+1] = byte((uint32(row[4*x+1])*a + 255*(255-a) + 127) / 255)
				o[3*x+2] = byte((uint32(row[4*x+2])*a + 255*(255-a) + 127) / 255)
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := s.Pix[(y)*s.Stride : (y)*s.Stride+4*w]
			o := p[y*w*3:]
			for x := 0; x < w; x++ {
				na := 255 - uint32(row[4*x+3])
				o[3*x] = byte(min(255, uint32(row[4*x])+na))
				o[3*x+1] = byte(min(255, uint32(row[4*x+1])+na))
				o[3*x+2] = byte(min(255, uint32(row[4*x+2])+na))
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := s.Pix[y*s.Stride : y*s.Stride+w]
			o := p[y*w*3:]
			for x, v := range row {
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
	case *image.Paletted:
		var pal [256][3]byte
		for i, c := range s.Palette {
			pal[i] = onWhite(c)
		}
		for y := 0; y < h; y++ {
			row := s.Pix[y*s.Stride : y*s.Stride+w]
			o := p[y*w*3:]
			for x, v := range row {
				c := pal[v]
				o[3*x], o[3*x+1], o[3*x+2] = c[0], c[1], c[2]
			}
		}
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			o := p[y*w*3:]
			for x := 0; x < w; x++ {
				yi := s.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := s.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bb := color.YCbCrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci])
				o[3*x], o[3*x+1], o[3*x+2] = r, g, bb
			}
		}
	default: // 16-bit, CMYK, NYCbCrA, ...: exact but slower
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := onWhite(m.At(x, y))
				p[i], p[i+1], p[i+2] = c[0], c[1], c[2]
				i += 3
			}
		}
	}
	return out
}

// onWhite composites a colour over white and returns 8-bit RGB.
func onWhite(c color.Color) [3]byte {
	if c == nil {
		return [3]byte{255, 255, 255}
	}
	r, g, b, a := c.RGBA() // premultiplied, 16-bit
	na := 0xffff - a
	return [3]byte{byte((r + na) >> 8), byte((g + na) >> 8), byte((b + na) >> 8)}
}

// orient applies EXIF orientation o (1..8) so the result is upright.
func orient(src *rgbImage, o int) *rgbImage {
	if o <= 1 || o > 8 {
		return src
	}
	W, H := src.w, src.h
	ow, oh := W, H
	if o >= 5 {
		ow, oh = H, W
	}
	dst := &rgbImage{w: ow, h: oh, pix: getBytes(len(src.pix))}
	defer putBytes(src.pix)
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			var sx, sy int
			switch o {
			case 2:
				sx, sy = W-1-x, y
			case 3:
				sx, sy = W-1-x, H-1-y
			case 4:
				sx, sy = x, H-1-y
			case 5:
				sx, sy = y, x
			case 6:
				sx, sy = y, H-1-x
			case 7:
				sx, sy = W-1-y, H-1-x
			case 8:
				sx, sy = W-1-y, x
			}
			si, di := 3*(sy*W+sx), 3*(y*ow+x)
			dst.pix[di], dst.pix[di+1], dst.pix[di+2] = src.pix[si], src.pix[si+1], src.pix[si+2]
		}
	}
	return dst
}
