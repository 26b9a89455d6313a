package embed

import (
	"math"
	"math/bits"
	"sync"

	"github.com/lookalike/lookalike/embed/spec"
)

// Scratch buffers of the hot path, reused across images: a decoded photo and the resampler's
// intermediate rows are ~1 MB per image, and allocating them made the GC a visible share of the CPU.
// They are pooled by power-of-two size class, so that the sizes of a regional profile's scales,
// which alternate, each find a buffer instead of discarding each other's.
var (
	bytePools  [bits.UintSize]sync.Pool
	floatPools [bits.UintSize]sync.Pool
)

// sizeClass is the pool a request for n values takes from: every buffer there holds at least
// 1<<class values.
func sizeClass(n int) int { return bits.Len(uint(max(n, 1) - 1)) }

// putClass is the pool a buffer of capacity c goes back to: the largest class it can serve.
func putClass(c int) int { return bits.Len(uint(c)) - 1 }

func getBytes(n int) []byte {
	k := sizeClass(n)
	if p, ok := bytePools[k].Get().(*[]byte); ok {
		return (*p)[:n]
	}
	return make([]byte, n, 1<<k)
}

func putBytes(b []byte) {
	if cap(b) > 0 {
		bytePools[putClass(cap(b))].Put(&b)
	}
}

func getFloats(n int) []float32 {
	k := sizeClass(n)
	if p, ok := floatPools[k].Get().(*[]float32); ok {
		return (*p)[:n]
	}
	return make([]float32, n, 1<<k)
}

func putFloats(b []float32) {
	if cap(b) > 0 {
		floatPools[putClass(cap(b))].Put(&b)
	}
}

// wantScale returns, for a crop r of the photo cfg, the fraction of its full resolution s's resize
// needs; JPEG decoding picks the smallest DCT scale at or above it, so the resampler only ever
// shrinks by less than ~1.3x.
func wantScale(s spec.Model) func(cfg Config, r Rect) float64 {
	if s.Crop == "squash" {
		return func(_ Config, r Rect) float64 {
			return math.Max(float64(s.InputSize)/float64(r.W), float64(s.InputSize)/float64(r.H))
		}
	}
	return func(_ Config, r Rect) float64 { return float64(s.ResizeTarget()) / float64(min(r.W, r.H)) }
}

// maxWeightTable is the most weights (float32) an axis keeps in a table. A triangle filter
// shrinking n source samples needs about 2n taps in all, so an image 1 pixel wide and 50 million
// high would need a 400 MB table; beyond this size each weight is computed when it is used (the
// same arithmetic, so the same result), so memory does not grow with the aspect ratio or the
// downscale factor. Images within the default limits never get there.
const maxWeightTable = 1 << 18

// axisWeights holds, per output sample, the first source index and the normalised tap weights of a
// triangle (bilinear) filter whose support widens with the downscale factor: area-averaging when
// shrinking, plain bilinear when enlarging (Pillow's antialiased bilinear, torchvision antialias=True).
type axisWeights struct {
	start  []int
	n      []int
	center []float64 // of each output sample, in source coordinates
	sum    []float64 // of its unnormalised taps; 0 for a degenerate window (weight 1, one pixel)
	taps   int
	fscale float64
	w      []float32 // output i's window at w[i*taps:]; nil when larger than maxWeightTable
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
	aw := axisWeights{start: make([]int, out), n: make([]int, out), center: make([]float64, out), sum: make([]float64, out),
		taps: taps, fscale: fscale}
	if out*taps <= maxWeightTable {
		aw.w = make([]float32, out*taps)
	}
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
		for j := a; j < b; j++ {
			sum += tri(j, center, fscale)
		}
		if sum == 0 { // degenerate (centre outside the box): nearest pixel
			a = min(max(ilo, int(center)), ihi-1)
			b = a + 1
		}
		aw.start[i], aw.n[i], aw.center[i], aw.sum[i] = a, b-a, center, sum
		if aw.w != nil {
			for k := range b - a {
				aw.w[i*taps+k] = aw.weight(i, k)
			}
		}
	}
	return aw
}

// tri is the unnormalised triangle tap of source sample j for an output sample centred at center.
func tri(j int, center, fscale float64) float64 {
	return max(0, 1-math.Abs((float64(j)+0.5-center)/fscale))
}

// weight computes output sample i's weight of the k-th sample of its window.
func (aw *axisWeights) weight(i, k int) float32 {
	if aw.sum[i] == 0 {
		return 1
	}
	return float32(float64(float32(tri(aw.start[i]+k, aw.center[i], aw.fscale))) / aw.sum[i])
}

// window returns output sample i's weights: from the table, or computed into scratch (at least
// aw.taps long) when there is no table.
func (aw *axisWeights) window(i int, scratch []float32) []float32 {
	n := aw.n[i]
	if aw.w != nil {
		return aw.w[i*aw.taps : i*aw.taps+n]
	}
	for k := range n {
		scratch[k] = aw.weight(i, k)
	}
	return scratch[:n]
}

// resample streams src's rows through the separable filter xw (columns) x yw (rows): each source
// row is filtered horizontally once and added into the output rows whose vertical window holds it,
// and emit(y, row) receives output row y (3*len(xw.start) floats, RGB interleaved) as soon as it is
// complete. Peak memory is the output in float32 plus one filtered row and the weights (bounded by
// maxWeightTable per axis): it never holds an intermediate image the height of the source, so
// neither the downscale factor nor the aspect ratio makes it grow. The sums run in the same order
// as a two-pass resize, so results are bit for bit those of one.
func resample(src *rgbImage, xw, yw *axisWeights, emit func(y int, row []float32)) {
	ow, oh := len(xw.start), len(yw.start)
	y0, y1 := yw.start[0], yw.start[oh-1]+yw.n[oh-1]
	for i := range oh {
		y0 = min(y0, yw.start[i])
		y1 = max(y1, yw.start[i]+yw.n[i])
	}
	rowLen := ow * 3
	buf := getFloats((oh + 1) * rowLen) // the output rows, then the filtered source row
	defer putFloats(buf)
	acc, hrow := buf[:oh*rowLen], buf[oh*rowLen:]
	clear(acc)
	var xs []float32 // a window's weights when xw has no table
	if xw.w == nil {
		xs = make([]float32, xw.taps)
	}
	fixed := xw.padTo(len(tap4{}.w), src.w)
	done := 0 // output rows below this were emitted
	for j := y0; j < y1; j++ {
		row := src.pix[j*src.w*3 : (j+1)*src.w*3]
		if fixed != nil {
			horizontal4(hrow, row, fixed)
		} else {
			for x := 0; x < ow; x++ {
				st := xw.start[x]
				ws := xw.window(x, xs)
				p := row[st*3 : (st+len(ws))*3]
				var r, g, b float32
				for k, w := range ws {
					r += w * float32(p[3*k])
					g += w * float32(p[3*k+1])
					b += w * float32(p[3*k+2])
				}
				hrow[3*x], hrow[3*x+1], hrow[3*x+2] = r, g, b
			}
		}
		// Windows start and end in output order, so the rows that read source row j are a run
		// from the first unfinished one.
		for y := done; y < oh && yw.start[y] <= j; y++ {
			k := j - yw.start[y]
			if k >= yw.n[y] {
				continue
			}
			var w float32
			if yw.w != nil {
				w = yw.w[y*yw.taps+k]
			} else {
				w = yw.weight(y, k)
			}
			a := acc[y*rowLen : (y+1)*rowLen]
			for i, v := range hrow {
				a[i] += w * v
			}
		}
		for done < oh && yw.start[done]+yw.n[done] <= j+1 {
			emit(done, acc[done*rowLen:(done+1)*rowLen])
			done++
		}
	}
}

// preprocessInto resamples d's crop box into dst (one image of the input tensor), normalised and
// laid out per the spec. dst must have s.TensorLen() values.
func preprocessInto(s spec.Model, dst []float32, d decoded) {
	img := d.img
	bw, bh := d.box[2]-d.box[0], d.box[3]-d.box[1]
	S := s.InputSize
	var sx, sy float64
	offX, offY := 0, 0
	if s.Crop == "squash" {
		sx, sy = float64(S)/bw, float64(S)/bh
	} else {
		sc := float64(s.ResizeTarget()) / math.Min(bw, bh)
		sx, sy = sc, sc
		rw := max(S, int(math.Round(bw*sc)))
		rh := max(S, int(math.Round(bh*sc)))
		offX, offY = (rw-S)/2, (rh-S)/2
	}
	xw := makeWeights(S, d.box[0], d.box[2], sx, offX, img.w)
	yw := makeWeights(S, d.box[1], d.box[3], sy, offY, img.h)
	normalizeInto(s, dst, img, &xw, &yw)
}

// resizeInto resamples d's whole crop box, aspect kept by the caller's choice of w x h, into dst
// (3*w*h values), normalised and laid out per the spec: the input of a regional profile's scale.
func resizeInto(s spec.Model, dst []float32, d decoded, w, h int) {
	bw, bh := d.box[2]-d.box[0], d.box[3]-d.box[1]
	xw := makeWeights(w, d.box[0], d.box[2], float64(w)/bw, 0, d.img.w)
	yw := makeWeights(h, d.box[1], d.box[3], float64(h)/bh, 0, d.img.h)
	normalizeInto(s, dst, d.img, &xw, &yw)
}

// normalizeInto resamples img through xw x yw into dst, normalising and laying out each output row
// as it completes.
func normalizeInto(s spec.Model, dst []float32, img *rgbImage, xw, yw *axisWeights) {
	W, H := len(xw.start), len(yw.start)
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
	plane := W * H
	nhwc := s.Layout == "NHWC"
	resample(img, xw, yw, func(y int, acc []float32) {
		if nhwc {
			o := dst[y*W*3 : (y+1)*W*3]
			for x := 0; x < W; x++ {
				for c := 0; c < 3; c++ {
					o[3*x+c] = acc[3*x+srcCh[c]]*scale[c] + bias[c]
				}
			}
			return
		}
		for c := 0; c < 3; c++ {
			o := dst[c*plane+y*W : c*plane+(y+1)*W]
			sc, bi, sch := scale[c], bias[c], srcCh[c]
			for x := range o {
				o[x] = acc[3*x+sch]*sc + bi
			}
		}
	})
}

// tap4 is one output sample of a filter with at most four taps, start clamped so all four lie
// inside the row: the common case (shrinking by less than 2x) runs without loops or bounds checks.
type tap4 struct {
	start int
	w     [4]float32
}

// padTo returns the weights as fixed four-tap windows, or nil when some window is wider, the
// source is narrower than four pixels or the weights are not tabulated.
func (aw *axisWeights) padTo(t, srcLen int) []tap4 {
	if srcLen < t || aw.w == nil {
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
