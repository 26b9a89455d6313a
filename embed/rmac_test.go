package embed

import (
	"github.com/lookalike/lookalike/embed/project"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRMACRegions checks the region grid against regions worked out by hand from Tolias et al.'s
// rule (side floor(2 min(H,W)/(l+1)), 40 % overlap, extra regions along the long side).
func TestRMACRegions(t *testing.T) {
	sq := func(y, x, s int) region { return region{y, x, s, s} }
	tests := []struct {
		name string
		h, w int
		want []region
	}{
		{
			// 224x224 input: 7x7 map. l=1: side 7 at 0; l=2: side 4, step 3: 0,3; l=3: side 3, step 2: 0,2,4.
			name: "7x7", h: 7, w: 7,
			want: []region{{0, 0, 7, 7}, sq(0, 0, 7),
				sq(0, 0, 4), sq(0, 3, 4), sq(3, 0, 4), sq(3, 3, 4),
				sq(0, 0, 3), sq(0, 2, 3), sq(0, 4, 3), sq(2, 0, 3), sq(2, 2, 3), sq(2, 4, 3), sq(4, 0, 3), sq(4, 2, 3), sq(4, 4, 3)},
		},
		{
			// 448x320 input: 10 rows x 14 columns. Extra steps along the width: b = 4/(s-1) for s=2..7
			// gives overlaps 0.6, 0.8, ...: s=2 is nearest 0.4, so one extra region per level.
			// l=1: side 10, 2 columns (step 4): x 0,4. l=2: side 6, wl2 2, x step 4: 0,4,8; y step 4: 0,4.
			// l=3: side 5, wl2 1, x step 3: 0,3,6,9; y step 2.5: floor(1)-1=0, floor(3.5)-1=2, floor(6)-1=5.
			name: "10x14", h: 10, w: 14,
			want: []region{{0, 0, 10, 14},
				sq(0, 0, 10), sq(0, 4, 10),
				sq(0, 0, 6), sq(0, 4, 6), sq(0, 8, 6), sq(4, 0, 6), sq(4, 4, 6), sq(4, 8, 6),
				sq(0, 0, 5), sq(0, 3, 5), sq(0, 6, 5), sq(0, 9, 5),
				sq(2, 0, 5), sq(2, 3, 5), sq(2, 6, 5), sq(2, 9, 5),
				sq(5, 0, 5), sq(5, 3, 5), sq(5, 6, 5), sq(5, 9, 5)},
		},
		{
			// A tall map is the transpose of the wide one.
			name: "14x10", h: 14, w: 10,
			want: []region{{0, 0, 14, 10},
				sq(0, 0, 10), sq(4, 0, 10),
				sq(0, 0, 6), sq(0, 4, 6), sq(4, 0, 6), sq(4, 4, 6), sq(8, 0, 6), sq(8, 4, 6),
				sq(0, 0, 5), sq(0, 2, 5), sq(0, 5, 5),
				sq(3, 0, 5), sq(3, 2, 5), sq(3, 5, 5),
				sq(6, 0, 5), sq(6, 2, 5), sq(6, 5, 5),
				sq(9, 0, 5), sq(9, 2, 5), sq(9, 5, 5)},
		},
		{
			// 1x3 map (a 32x96 banner): l=1 side 1 on 1+1 columns? steps: b=2/(s-1) = 2,1,...;
			// overlap (1-b) = -1, 0, 0.33, 0.5, ...: s=4 (b 0.667, overlap 0.33) is nearest 0.4, so
			// 3 extra columns: l=1 has 4 regions of side 1 at x = floor(-1+j) + 1 = 0, 0, 1, 2 (step
			// 2/3). l=2 and l=3 have side 0 and are skipped.
			name: "1x3", h: 1, w: 3,
			want: []region{{0, 0, 1, 3}, sq(0, 0, 1), sq(0, 0, 1), sq(0, 1, 1), sq(0, 2, 1)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rmacRegions(nil, tc.h, tc.w, 3)
			if !slices.Equal(got, tc.want) {
				t.Errorf("regions\n got %v\nwant %v", got, tc.want)
			}
			for _, r := range got {
				if r.y < 0 || r.x < 0 || r.y+r.h > tc.h || r.x+r.w > tc.w {
					t.Errorf("region %v outside the %dx%d map", r, tc.h, tc.w)
				}
			}
		})
	}
}

// naiveRMAC is R-MAC written plainly on the [C,H,W] map: the reference for rmacPool.
func naiveRMAC(fm []float32, c, h, w, levels int) []float32 {
	out := make([]float64, c)
	for _, r := range rmacRegions(nil, h, w, levels) {
		v := make([]float64, c)
		var norm float64
		for ch := range c {
			m := math.Inf(-1)
			for y := r.y; y < r.y+r.h; y++ {
				for x := r.x; x < r.x+r.w; x++ {
					m = math.Max(m, float64(fm[ch*h*w+y*w+x]))
				}
			}
			v[ch] = m
			norm += m * m
		}
		norm = math.Sqrt(norm)
		for ch := range c {
			out[ch] += v[ch] / (norm + 1e-6)
		}
	}
	var norm float64
	for _, x := range out {
		norm += x * x
	}
	res := make([]float32, c)
	for i, x := range out {
		res[i] = float32(x / math.Sqrt(norm))
	}
	return res
}

func randomMap(c, h, w int) []float32 {
	r := rand.New(rand.NewPCG(1, uint64(h*100+w)))
	fm := make([]float32, c*h*w)
	for i := range fm {
		if r.Float32() < 0.6 { // post-ReLU maps are mostly zero
			fm[i] = r.Float32() * 6
		}
	}
	return fm
}

func TestRMACPoolMatchesReference(t *testing.T) {
	var p rmacPool
	for _, hw := range [][2]int{{7, 7}, {10, 14}, {14, 10}, {1, 3}, {11, 14}, {7, 7}} {
		const c = 1280
		fm := randomMap(c, hw[0], hw[1])
		got := make([]float32, c)
		p.pool(got, fm, hw[0], hw[1], 3, nil, nil)
		want := naiveRMAC(fm, c, hw[0], hw[1], 3)
		for i := range got {
			if math.Abs(float64(got[i]-want[i])) > 1e-5 {
				t.Fatalf("%v: channel %d: %g, reference %g", hw, i, got[i], want[i])
			}
		}
	}
}

// TestRMACPoolProjection: the regions pool hands back are the reference's (their plain sum is the
// R-MAC vector), and pooling through a projection equals project.Pool over those regions.
func TestRMACPoolProjection(t *testing.T) {
	const c, h, w = 64, 10, 14
	var train []float32
	for k := 0; k < 8; k++ {
		fm := randomMap(c, h+k%3, w-k%2)
		var p rmacPool
		p.pool(make([]float32, c), fm, h+k%3, w-k%2, 3, nil, &train)
	}
	proj, err := project.Learn(train, c, project.Options{Dims: 16})
	if err != nil {
		t.Fatal(err)
	}
	fm := randomMap(c, h, w)
	var p rmacPool
	var regs []float32
	plain := make([]float32, c)
	n := p.pool(plain, fm, h, w, 3, nil, &regs)
	if n == 0 || len(regs) != n*c {
		t.Fatalf("%d regions, %d values", n, len(regs))
	}
	want := naiveRMAC(fm, c, h, w, 3)
	for i := range plain {
		if math.Abs(float64(plain[i]-want[i])) > 1e-5 {
			t.Fatalf("channel %d: %g, reference %g", i, plain[i], want[i])
		}
	}
	got := make([]float32, proj.Dims)
	if m := p.pool(got, fm, h, w, 3, proj, nil); m != n {
		t.Fatalf("%d regions with the projection, %d without", m, n)
	}
	if a := testing.AllocsPerRun(10, func() { p.pool(got, fm, h, w, 3, proj, nil) }); a != 0 {
		t.Errorf("%.0f allocations per projected pool, want 0", a)
	}
	ref := make([]float32, proj.Dims)
	if err := proj.Pool(ref, regs, []int{n}, nil); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if math.Abs(float64(got[i]-ref[i])) > 1e-5 {
			t.Fatalf("dim %d: %g, project.Pool %g", i, got[i], ref[i])
		}
	}
}

// TestRMACPoolAllocs: pooling reuses its scratch, so a map of a size seen before allocates nothing.
func TestRMACPoolAllocs(t *testing.T) {
	var p rmacPool
	fm := randomMap(1280, 14, 11)
	dst := make([]float32, 1280)
	p.pool(dst, fm, 14, 11, 3, nil, nil)
	if n := testing.AllocsPerRun(20, func() { p.pool(dst, fm, 14, 11, 3, nil, nil) }); n != 0 {
		t.Errorf("%.0f allocations per pool, want 0", n)
	}
}

// BenchmarkRMAC pools the maps of the ms448 profile's three scales for a 4:3 photo (448x336,
// 317x238, 224x168 inputs), against the plain per-channel loops of the reference.
func BenchmarkRMAC(b *testing.B) {
	maps := [][2]int{{11, 14}, {8, 10}, {6, 7}}
	fms := make([][]float32, len(maps))
	for i, hw := range maps {
		fms[i] = randomMap(1280, hw[0], hw[1])
	}
	dst := make([]float32, 1280)
	b.Run("vectorised", func(b *testing.B) {
		var p rmacPool
		b.ReportAllocs()
		for b.Loop() {
			for i, hw := range maps {
				p.pool(dst, fms[i], hw[0], hw[1], 3, nil, nil)
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for i, hw := range maps {
				naiveRMAC(fms[i], 1280, hw[0], hw[1], 3)
			}
		}
	})
}
