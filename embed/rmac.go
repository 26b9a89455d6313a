package embed

import (
	"math"

	"github.com/lookalike/lookalike/embed/project"
	"github.com/viterin/vek/vek32"
)

// region is a rectangle of feature-map cells.
type region struct{ y, x, h, w int }

// rmacOverlap is R-MAC's desired overlap of neighbouring regions (Tolias et al. 2016).
const rmacOverlap = 0.4

// rmacSteps are the region counts tried along the long side for its extra regions.
var rmacSteps = [...]float64{2, 3, 4, 5, 6, 7}

// rmacRegions appends to dst the regions of an h x w map (rows x columns) for levels levels: the
// whole map, then, per level l, square regions of side floor(2 min(h,w) / (l+1)) on a grid with
// l regions along the short side and l+d along the long one, d chosen so that neighbours overlap
// by about 40 %. It follows the reference implementation (Tolias' MATLAB code, as ported by
// Radenović's cirtorch `rmac`) step for step, the whole map included, so the regions match it
// exactly.
func rmacRegions(dst []region, h, w, levels int) []region {
	dst = append(dst[:0], region{0, 0, h, w})
	side := min(w, h)
	if side <= 0 {
		return dst
	}
	wd, hd := 0, 0
	if h != w {
		best, idx := math.Inf(1), 0
		for i, st := range rmacSteps {
			b := float64(max(h, w)-side) / (st - 1)
			v := math.Abs((float64(side*side)-float64(side)*b)/float64(side*side) - rmacOverlap)
			if v < best {
				best, idx = v, i
			}
		}
		if h < w {
			wd = idx + 1
		} else {
			hd = idx + 1
		}
	}
	for l := 1; l <= levels; l++ {
		wl := int(math.Floor(2 * float64(side) / float64(l+1)))
		if wl == 0 {
			continue
		}
		wl2 := math.Floor(float64(wl)/2 - 1)
		step := func(n, extra int) float64 {
			if l+extra == 1 {
				return 0
			}
			return float64(n-wl) / float64(l+extra-1)
		}
		bw, bh := step(w, wd), step(h, hd)
		for i := 0; i < l+hd; i++ {
			y := int(math.Floor(wl2+float64(i)*bh) - wl2)
			for j := 0; j < l+wd; j++ {
				x := int(math.Floor(wl2+float64(j)*bw) - wl2)
				dst = append(dst, region{y, x, wl, wl})
			}
		}
	}
	return dst
}

// rmacPool computes R-MAC vectors from [C,H,W] feature maps. It keeps its scratch between calls:
// after the first map of a given size, pooling allocates nothing. Not safe for concurrent use (each
// inference worker owns one).
type rmacPool struct {
	hwc     []float32 // the map transposed to [H*W][C]: a cell's channels are contiguous
	cur     []float32 // one region's max
	proj    []float32 // one region's projection
	regions []region
	rh, rw  int // the map size regions were computed for
	rl      int
}

// pool writes into dst the R-MAC vector of fm ([C,H,W], C = len(dst) without proj): each region
// max-pooled per channel, L2-normalised (and, with proj, whitened into proj.Dims = len(dst) values
// and L2-normalised again), summed, and the sum L2-normalised. With regs it appends each region's
// normalised C-vector to *regs. It returns the number of regions summed (all but those of an all-zero map). The max and sum run on whole
// channel vectors (SIMD through vek32) over the transposed map.
func (p *rmacPool) pool(dst, fm []float32, h, w, levels int, proj *project.Projection, regs *[]float32) int {
	c := len(dst)
	if proj != nil {
		c = proj.In
		if cap(p.proj) < proj.Dims {
			p.proj = make([]float32, proj.Dims)
		}
	}
	n := h * w
	if cap(p.hwc) < n*c {
		p.hwc = make([]float32, n*c)
	}
	if cap(p.cur) < c {
		p.cur = make([]float32, c)
	}
	hwc, cur := p.hwc[:n*c], p.cur[:c]
	transpose(hwc, fm, c, n)
	if p.rh != h || p.rw != w || p.rl != levels || len(p.regions) == 0 {
		p.regions = rmacRegions(p.regions, h, w, levels)
		p.rh, p.rw, p.rl = h, w, levels
	}
	clear(dst)
	kept := 0
	for _, r := range p.regions {
		first := true
		for y := r.y; y < r.y+r.h; y++ {
			row := hwc[(y*w+r.x)*c : (y*w+r.x+r.w)*c]
			for k := 0; k < r.w; k++ {
				cell := row[k*c : (k+1)*c]
				if first {
					copy(cur, cell)
					first = false
				} else {
					vek32.Maximum_Inplace(cur, cell)
				}
			}
		}
		norm := vek32.Norm(cur)
		if norm == 0 {
			continue
		}
		// cirtorch adds eps = 1e-6 to the norm; on these maps (norms of ~10) it changes nothing.
		vek32.MulNumber_Inplace(cur, 1/(norm+1e-6))
		kept++
		if regs != nil {
			*regs = append(*regs, cur...)
		}
		if proj != nil {
			pr := p.proj[:proj.Dims]
			proj.Region(pr, cur)
			vek32.Add_Inplace(dst, pr)
		} else {
			vek32.Add_Inplace(dst, cur)
		}
	}
	if norm := vek32.Norm(dst); norm > 0 {
		vek32.MulNumber_Inplace(dst, 1/norm)
	}
	return kept
}

// transpose writes the [c][n] matrix src as [n][c] into dst, in tiles that stay in the L1 cache.
func transpose(dst, src []float32, c, n int) {
	const tile = 32
	for c0 := 0; c0 < c; c0 += tile {
		c1 := min(c0+tile, c)
		for n0 := 0; n0 < n; n0 += tile {
			n1 := min(n0+tile, n)
			for ch := c0; ch < c1; ch++ {
				s := src[ch*n : ch*n+n1]
				for k := n0; k < n1; k++ {
					dst[k*c+ch] = s[k]
				}
			}
		}
	}
}
