package intel

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"sync"

	"github.com/lookalike/lookalike/index"
)

// PixelSignature is a small copy of a thumbnail for checking that two photos show the same pixels
// (the embedding alone cannot tell a re-encoded copy from another photo of the same product taken
// a moment later, nor from the same product in another colour: see docs/intelligence.md). It keeps
// the luminance, for the shape, and the two chroma channels, for the colour.
type PixelSignature struct {
	w, h      int
	y, cb, cr []float32 // planes of w*h; cb and cr centred on 0 (grey)
	full      *region   // whole(), lazily
	wins      []*region // windows(), lazily
}

// region is one rectangle of a signature resampled for comparison: luma on a gridSide² grid,
// zero-mean and unit-norm (all zeros when flat), chroma as cell means on a chromaSide² grid.
type region struct {
	luma   []float32
	cb, cr []float32
}

// PixelScore compares two signatures. Luma is the best normalised cross-correlation (-1..1) of
// their luminance over the alignments tried; Chroma (0..1) is how well the colours agree at that
// alignment: 1 for the same colours, lower as hues rotate or saturation goes away or appears.
type PixelScore struct {
	Luma   float64 `json:"luma"`
	Chroma float64 `json:"chroma"`
}

const (
	sigSide    = 96 // the signature's longer side in pixels
	gridSide   = 32 // luminance grid
	chromaSide = 12 // chroma grid: coarse, colour changes slowly and alignments are approximate
	// chromaFloor (in Cb/Cr units, where the most saturated colours reach ~110) is added to every
	// cell's colour mass: grey cells, whose hue is JPEG noise, weigh almost nothing.
	chromaFloor = 6
)

// NewPixelSignature decodes a JPEG thumbnail into a signature.
func NewPixelSignature(thumb []byte) (*PixelSignature, error) {
	img, err := jpeg.Decode(bytes.NewReader(thumb))
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	if b.Dx() < 8 || b.Dy() < 8 {
		return nil, fmt.Errorf("thumbnail %dx%d is too small", b.Dx(), b.Dy())
	}
	scale := float64(sigSide) / float64(max(b.Dx(), b.Dy()))
	w, h := max(8, int(float64(b.Dx())*scale+0.5)), max(8, int(float64(b.Dy())*scale+0.5))
	s := &PixelSignature{w: w, h: h, y: make([]float32, w*h), cb: make([]float32, w*h), cr: make([]float32, w*h)}
	cnt := make([]float32, w*h)
	ycc := func(x, y int) (float32, float32, float32) {
		switch im := img.(type) {
		case *image.YCbCr:
			ci := im.COffset(x, y)
			return float32(im.Y[im.YOffset(x, y)]), float32(im.Cb[ci]) - 128, float32(im.Cr[ci]) - 128
		case *image.Gray:
			return float32(im.Pix[im.PixOffset(x, y)]), 0, 0
		}
		r, g, bl, _ := img.At(x, y).RGBA()
		yy, cb, cr := color.RGBToYCbCr(uint8(r>>8), uint8(g>>8), uint8(bl>>8))
		return float32(yy), float32(cb) - 128, float32(cr) - 128
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		sy := min(h-1, int(float64(y-b.Min.Y)*scale))
		for x := b.Min.X; x < b.Max.X; x++ {
			i := sy*w + min(w-1, int(float64(x-b.Min.X)*scale))
			yy, cb, cr := ycc(x, y)
			s.y[i] += yy
			s.cb[i] += cb
			s.cr[i] += cr
			cnt[i]++
		}
	}
	for i, n := range cnt {
		if n > 0 {
			s.y[i], s.cb[i], s.cr[i] = s.y[i]/n, s.cb[i]/n, s.cr[i]/n
		}
	}
	return s, nil
}

// bilinear samples a w*h plane at (x, y), clamped to its edges.
func bilinear(p []float32, w, h int, x, y float64) float32 {
	x, y = math.Max(0, math.Min(x, float64(w-1))), math.Max(0, math.Min(y, float64(h-1)))
	x0, y0 := int(x), int(y)
	x1, y1 := min(x0+1, w-1), min(y0+1, h-1)
	ax, ay := float32(x-float64(x0)), float32(y-float64(y0))
	return (p[y0*w+x0]*(1-ax)+p[y0*w+x1]*ax)*(1-ay) + (p[y1*w+x0]*(1-ax)+p[y1*w+x1]*ax)*ay
}

// Compare scores two signatures: the luminance of one whole against the other whole, and against
// 90% windows of the other at nine places, both ways, so re-encoding, resizing, a brightness or
// contrast change and a crop of about 10% all correlate near 1 while another photo of the same
// object, taken from a slightly different place, correlates lower. The chroma is compared at the
// best luminance alignment. About 20 correlations of 32x32 samples: well under a millisecond.
func Compare(a, b *PixelSignature) PixelScore {
	pa, pb := a.whole(), b.whole()
	best := float64(index.Dot(pa.luma, pb.luma))
	for _, w := range b.windows() {
		if s := float64(index.Dot(a.whole().luma, w.luma)); s > best {
			best, pa, pb = s, a.whole(), w
		}
	}
	for _, w := range a.windows() {
		if s := float64(index.Dot(w.luma, b.whole().luma)); s > best {
			best, pa, pb = s, w, b.whole()
		}
	}
	return PixelScore{Luma: best, Chroma: chromaAgreement(pa, pb)}
}

// chromaAgreement is 1 minus the colour difference of two aligned regions relative to their
// colour. b's chroma is first scaled by the factor that best fits a's (clamped to 2/3..3/2), so a
// brightness, contrast or saturation change of up to about 50% costs little while a hue rotation
// does not scale away; then sum over cells of |Δ(Cb,Cr)| / sum of (|a| + |b| + chromaFloor). A hue
// rotation by θ of a saturated region gives about 1 - sin θ / (1 + cos θ) (30°: 0.73, 60°: 0.42),
// a photo against its grey copy about 0.2, and grey regions stay near 1 whatever their JPEG noise.
func chromaAgreement(a, b *region) float64 {
	var ab, bb float64
	for i := range a.cb {
		ab += float64(a.cb[i]*b.cb[i] + a.cr[i]*b.cr[i])
		bb += float64(b.cb[i]*b.cb[i] + b.cr[i]*b.cr[i])
	}
	scale := 1.0
	if bb > 0 {
		scale = math.Max(2.0/3, math.Min(1.5, ab/bb))
	}
	var diff, mass float64
	for i := range a.cb {
		sb, sr := scale*float64(b.cb[i]), scale*float64(b.cr[i])
		diff += math.Hypot(float64(a.cb[i])-sb, float64(a.cr[i])-sr)
		mass += math.Hypot(float64(a.cb[i]), float64(a.cr[i])) + math.Hypot(sb, sr) + chromaFloor
	}
	return 1 - diff/mass
}

// whole is the signature resampled (computed once).
func (s *PixelSignature) whole() *region {
	if s.full == nil {
		s.full = s.sample(0, 0, float64(s.w), float64(s.h))
	}
	return s.full
}

// windows are the nine 90% sub-rectangles of the signature, resampled (computed once).
func (s *PixelSignature) windows() []*region {
	if s.wins == nil {
		const scale = 0.9
		rw, rh := float64(s.w)*scale, float64(s.h)*scale
		for iy := range 3 {
			for ix := range 3 {
				ox, oy := (float64(s.w)-rw)*float64(ix)/2, (float64(s.h)-rh)*float64(iy)/2
				s.wins = append(s.wins, s.sample(ox, oy, rw, rh))
			}
		}
	}
	return s.wins
}

// sample resamples the rectangle (ox, oy, rw, rh): luminance to the grid (normalised), chroma to
// cell means of 4x4 samples each.
func (s *PixelSignature) sample(ox, oy, rw, rh float64) *region {
	r := &region{luma: make([]float32, gridSide*gridSide), cb: make([]float32, chromaSide*chromaSide), cr: make([]float32, chromaSide*chromaSide)}
	v := make([]float64, gridSide*gridSide)
	var m float64
	for y := range gridSide {
		for x := range gridSide {
			p := float64(bilinear(s.y, s.w, s.h, ox+(float64(x)+0.5)*rw/gridSide-0.5, oy+(float64(y)+0.5)*rh/gridSide-0.5))
			v[y*gridSide+x] = p
			m += p
		}
	}
	m /= float64(len(v))
	var ss float64
	for i := range v {
		v[i] -= m
		ss += v[i] * v[i]
	}
	if ss >= 1e-6 {
		n := math.Sqrt(ss)
		for i := range v {
			r.luma[i] = float32(v[i] / n)
		}
	}
	const sub = 4
	step := 1.0 / (chromaSide * sub)
	for cy := range chromaSide {
		for cx := range chromaSide {
			var cb, cr float32
			for j := range sub {
				for i := range sub {
					fx := ox + (float64(cx*sub+i)+0.5)*step*rw - 0.5
					fy := oy + (float64(cy*sub+j)+0.5)*step*rh - 0.5
					cb += bilinear(s.cb, s.w, s.h, fx, fy)
					cr += bilinear(s.cr, s.w, s.h, fx, fy)
				}
			}
			r.cb[cy*chromaSide+cx], r.cr[cy*chromaSide+cx] = cb/(sub*sub), cr/(sub*sub)
		}
	}
	return r
}

// compact computes the regions Compare reads and drops the planes: ~46 KB kept per signature.
func (s *PixelSignature) compact() *PixelSignature {
	s.whole()
	s.windows()
	s.y, s.cb, s.cr = nil, nil, nil
	return s
}

// SignatureCache keeps compact pixel signatures across requests, keyed by the thumbnail's SHA-256
// (content-addressed: a replaced photo never hits a stale entry). It holds at most
// maxCachedSignatures and starts over when full: thumbnails decode in about a millisecond, so a
// miss costs little, but diversified "similar" pages would decode dozens per request without it.
// The zero value is ready; a nil cache caches nothing.
type SignatureCache struct {
	mu sync.Mutex
	m  map[[32]byte]*PixelSignature
}

const maxCachedSignatures = 1024

func (c *SignatureCache) get(thumb []byte) *PixelSignature {
	if len(thumb) == 0 {
		return nil
	}
	var key [32]byte
	if c != nil {
		key = sha256.Sum256(thumb)
		c.mu.Lock()
		s, ok := c.m[key]
		c.mu.Unlock()
		if ok {
			return s
		}
	}
	s, err := NewPixelSignature(thumb)
	if err != nil {
		return nil
	}
	s.compact()
	if c != nil {
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxCachedSignatures {
			c.m = map[[32]byte]*PixelSignature{}
		}
		c.m[key] = s
		c.mu.Unlock()
	}
	return s
}

// sigCache keeps the signatures used by one call, backed by the shared cache.
type sigCache struct {
	shared *SignatureCache
	local  map[string]*PixelSignature
}

func newSigCache(shared *SignatureCache) *sigCache {
	return &sigCache{shared: shared, local: map[string]*PixelSignature{}}
}

func (c *sigCache) get(id string, thumb []byte) *PixelSignature {
	if s, ok := c.local[id]; ok {
		return s
	}
	s := c.shared.get(thumb) // nil when the thumbnail is missing or unreadable
	c.local[id] = s
	return s
}

// compare is the PixelScore of two items, zero when either has no usable thumbnail.
func (c *sigCache) compare(aID string, a []byte, bID string, b []byte) PixelScore {
	sa, sb := c.get(aID, a), c.get(bID, b)
	if sa == nil || sb == nil {
		return PixelScore{}
	}
	return Compare(sa, sb)
}
