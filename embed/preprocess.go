package embed

import (
	"math"
	"sync"
)

// Scratch buffers of the hot path, reused across images: a decoded photo and the resampler's
// intermediate rows are ~1 MB per image, and allocating them made the GC a visible share of the CPU.
var (
	bytePool  sync.Pool
	floatPool sync.Pool
)

func getBytes(n int) []byte {
	if p, ok := bytePool.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]byte, n)
}

func putBytes(b []byte) { bytePool.Put(&b) }

func getFloats(n int) []float32 {
	if p, ok := floatPool.Get().(*[]float32); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]float32, n)
}

func putFloats(b []float32) { floatPool.Put(&b) }

// tensorLen is the number of float32 values one image occupies in the input tensor.
func (s ModelSpec) tensorLen() int { return 3 * s.InputSize * s.InputSize }

// wantScale returns the fraction of the full-resolution crop the resize needs; JPEG decoding picks
// the smallest DCT scale at or above it, so the resampler only ever shrinks by less than ~1.3x.
func (s ModelSpec) wantScale(cw, ch int) float64 {
	if s.Crop == "squash" {
		return math.Max(float64(s.InputSize)/float64(cw), float64(s.InputSize)/float64(ch))
	}
	return float64(s.resizeShorter()) / float64(min(cw, ch))
}

// axisWeights holds, per output sample, the first source index and the normalised tap weights of a
// triangle (bilinear) filter whose support widens with the downscale factor: area-averaging when
// shrinking, plain bilinear when enlarging (Pillow's antialiased bilinear, torchvision antialias=True).
type axisWeights struct {
	start []int
	n     []int
	taps  int
	w     []float32
}

// makeWeights maps out output samples onto the source interval [lo, hi) scaled by scale
// (output/source), skipping off output samples (the centre-crop offset).
func makeWeights(out int, lo, hi, scale float64, off int, srcLen int) axisWeights {
	support := 1.0
	fscale := 1.0
	if scale < 1 {
		fscale = 1 / scale
		support = fscale
	}
	taps := int(math.Ceil(support))*2 + 2
	aw := axisWeights{start: make([]int, out), n: make([]int, out), taps: taps, w: make([]float32, out*taps)}
	ilo := max(0, int(math.Floor(lo)))
	ihi := min(srcLen, int(math.Ceil(hi)))
	if ihi <= ilo {
		ihi = ilo + 1
	}
	for i := 0; i < out; i++ {
		center := lo + (float64(i+off)+0.5)/scale
		a := max(ilo, int(math.Floor(center-support+0.5)))
		b := min(ihi, int(math.Ceil(center+support-0.5)))
		if b-a > taps {
			b = a + taps
		}
		var sum float64
		ws := aw.w[i*taps : (i+1)*taps]
		for j := a; j < b; j++ {
			v := 1 - math.Abs((float64(j)+0.5-center)/fscale)
			if v < 0 {
				v = 0
			}
			ws[j-a] = float32(v)
			sum += v
		}
		if sum == 0 { // degenerate (centre outside the box): nearest pixel
			a = min(max(ilo, int(center)), ihi-1)
			b = a + 1
			ws[0], sum = 1, 1
		}
		for j := 0; j < b-a; j++ {
			ws[j] = float32(float64(ws[j]) / sum)
		}
		aw.start[i], aw.n[i] = a, b-a
	}
	return aw
}

// preprocessInto resamples d's crop box into dst (one image of the input tensor), normalised and
// laid out per the spec. dst must have s.tensorLen() values.
func (s ModelSpec) preprocessInto(dst []float32, d decoded) {
	img := d.img
	bw, bh := d.box[2]-d.box[0], d.box[3]-d.box[1]
	S := s.InputSize
	var sx, sy float64
	offX, offY := 0, 0
	if s.Crop == "squash" {
		sx, sy = float64(S)/bw, float64(S)/bh
	} else {
		sc := float64(s.resizeShorter()) / math.Min(bw, bh)
		sx, sy = sc, sc
		rw := max(S, int(math.Round(bw*sc)))
		rh := max(S, int(math.Round(bh*sc)))
		offX, offY = (rw-S)/2, (rh-S)/2
	}
	xw := makeWeights(S, d.box[0], d.box[2], sx, offX, img.w)
	yw := makeWeights(S, d.box[1], d.box[3], sy, offY, img.h)

	// horizontal pass over the source rows the vertical pass will read
	y0 := yw.start[0]
	y1 := yw.start[S-1] + yw.n[S-1]
	for i := range S {
		y0 = min(y0, yw.start[i])
		y1 = max(y1, yw.start[i]+yw.n[i])
	}
	tmp := getFloats((y1 - y0) * S * 3)
	defer putFloats(tmp)
	fixed := xw.padTo(4, img.w)
	for y := y0; y < y1; y++ {
		row := img.pix[y*img.w*3 : (y+1)*img.w*3]
		t := tmp[(y-y0)*S*3 : (y-y0+1)*S*3]
		if fixed != nil {
			horizontal4(t, row, fixed)
			continue
		}
		for x := 0; x < S; x++ {
			st, n := xw.start[x], xw.n[x]
			ws := xw.w[x*xw.taps : x*xw.taps+n]
			src := row[st*3 : (st+n)*3]
			var r, g, b float32
			for k, w := range ws {
				r += w * float32(src[3*k])
				g += w * float32(src[3*k+1])
				b += w * float32(src[3*k+2])
			}
			t[3*x], t[3*x+1], t[3*x+2] = r, g, b
		}
	}

	// vertical pass, normalisation and layout in one go
	var scale, bias [3]float32
	var srcCh [3]int
	for c := 0; c < 3; c++ {
		scale[c] = 1 / (255 * s.Std[c])
		bias[c] = -s.Mean[c] / s.Std[c]
		srcCh[c] = c
		if s.ChannelOrder == "BGR" {
			srcCh[c] = 2 - c
		}
	}
	plane := S * S
	nhwc := s.Layout == "NHWC"
	acc := getFloats(S * 3)
	defer putFloats(acc)
	for y := 0; y < S; y++ {
		st, n := yw.start[y], yw.n[y]
		ws := yw.w[y*yw.taps : y*yw.taps+n]
		clear(acc)
		for k, w := range ws {
			row := tmp[(st+k-y0)*S*3 : (st+k-y0+1)*S*3]
			row = row[:len(acc)]
			for i, v := range row {
				acc[i] += w * v
			}
		}
		if nhwc {
			o := dst[y*S*3 : (y+1)*S*3]
			for x := 0; x < S; x++ {
				for c := 0; c < 3; c++ {
					o[3*x+c] = acc[3*x+srcCh[c]]*scale[c] + bias[c]
				}
			}
			continue
		}
		for c := 0; c < 3; c++ {
			o := dst[c*plane+y*S : c*plane+(y+1)*S]
			sc, bi, sch := scale[c], bias[c], srcCh[c]
			for x := range o {
				o[x] = acc[3*x+sch]*sc + bi
			}
		}
	}
}

// tap4 is one output sample of a filter with at most four taps, start clamped so all four lie
// inside the row: the common case (shrinking by less than 2x) runs without loops or bounds checks.
type tap4 struct {
	start int
	w     [4]float32
}

// padTo returns the weights as fixed four-tap windows, or nil when some window is wider or the
// source is narrower than four pixels.
func (aw axisWeights) padTo(t, srcLen int) []tap4 {
	if srcLen < t {
		return nil
	}
	out := make([]tap4, len(aw.start))
	for i := range aw.start {
		n := aw.n[i]
		if n > t {
			return nil
		}
		st := min(aw.start[i], srcLen-t)
		shift := aw.start[i] - st
		for k := 0; k < n; k++ {
			out[i].w[k+shift] = aw.w[i*aw.taps+k]
		}
		out[i].start = st
	}
	return out
}

func horizontal4(t []float32, row []byte, taps []tap4) {
	for x, tp := range taps {
		p := row[tp.start*3 : tp.start*3+12]
		w := tp.w
		o := t[3*x : 3*x+3]
		o[0] = w[0]*float32(p[0]) + w[1]*float32(p[3]) + w[2]*float32(p[6]) + w[3]*float32(p[9])
		o[1] = w[0]*float32(p[1]) + w[1]*float32(p[4]) + w[2]*float32(p[7]) + w[3]*float32(p[10])
		o[2] = w[0]*float32(p[2]) + w[1]*float32(p[5]) + w[2]*float32(p[8]) + w[3]*float32(p[11])
	}
}
