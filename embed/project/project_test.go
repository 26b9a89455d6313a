package project

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// handCase: four 2-d points around the mean (1, 1): (1±2, 1) and (1, 1±1). The covariance
// (divided by 4) is diag(2, 0.5): the axes are x (λ 2) then y (λ 0.5), so whitening scales x by
// 1/√2 and y by √2.
var handCase = []float32{3, 1, -1, 1, 1, 2, 1, 0}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestLearnHandCase: whitening (power 0.5) scales x by 1/√2 and y by √2; plain PCA (power 0,
// the zero value, "pca<dims>") rotates onto the same axes without rescaling them, so a centred
// point keeps its coordinates (up to the axis signs) and only the L2 normalisation changes them.
func TestLearnHandCase(t *testing.T) {
	tests := []struct {
		name  string
		power float64
		wantP []float64
		diag  []float32 // (2, 1.5), centred (1, 0.5), projected and L2-normalised
	}{
		// whitened (1/√2, √2/2): equal parts
		{"whitening", DefaultPower, []float64{1 / math.Sqrt2, 0, 0, math.Sqrt2}, []float32{1 / math.Sqrt2, 1 / math.Sqrt2}},
		// not rescaled, only normalised
		{"plain PCA", 0, []float64{1, 0, 0, 1}, []float32{2 / float32(math.Sqrt(5)), 1 / float32(math.Sqrt(5))}},
	}
	for _, tc := range tests {
		p, err := Learn(handCase, 2, Options{Dims: 2, Power: tc.power})
		if err != nil {
			t.Fatal(err)
		}
		if p.Power != tc.power || !near(float64(p.Mean[0]), 1, 1e-6) || !near(float64(p.Mean[1]), 1, 1e-6) {
			t.Fatalf("%s: power %g mean %v, want %g [1 1]", tc.name, p.Power, p.Mean, tc.power)
		}
		if !near(p.Eigen[0], 2, 1e-9) || !near(p.Eigen[1], 0.5, 1e-9) {
			t.Fatalf("%s: eigenvalues %v, want [2 0.5]", tc.name, p.Eigen)
		}
		for k, w := range tc.wantP {
			if !near(float64(p.P[k]), w, 1e-6) {
				t.Fatalf("%s: P %v, want %v", tc.name, p.P, tc.wantP)
			}
		}
		points := []struct{ x, want []float32 }{
			{[]float32{3, 1}, []float32{1, 0}},
			{[]float32{1, 0}, []float32{0, -1}},
			{[]float32{2, 1.5}, tc.diag},
		}
		dst := make([]float32, 2)
		for _, pt := range points {
			p.Region(dst, pt.x)
			for k := range dst {
				if !near(float64(dst[k]), float64(pt.want[k]), 1e-6) {
					t.Errorf("%s: %v gives %v, want %v", tc.name, pt.x, dst, pt.want)
				}
			}
		}
	}
	// one dimension keeps the x axis only
	p1, err := Learn(handCase, 2, Options{Dims: 1, Power: DefaultPower})
	if err != nil {
		t.Fatal(err)
	}
	if len(p1.P) != 2 || !near(float64(p1.P[0]), 1/math.Sqrt2, 1e-6) || p1.P[1] != 0 {
		t.Fatalf("1-d P %v", p1.P)
	}
}

func TestPoolScales(t *testing.T) {
	p, err := Learn(handCase, 2, Options{Dims: 2, Power: DefaultPower})
	if err != nil {
		t.Fatal(err)
	}
	// scale 1: regions on x and on y sum to (1,-1)/√2; scale 2: one region on x -> (1,0).
	// Sum (1+1/√2, -1/√2), normalised.
	regions := []float32{3, 1, 1, 0, 3, 1}
	dst := make([]float32, 2)
	if err := p.Pool(dst, regions, []int{2, 1}, nil); err != nil {
		t.Fatal(err)
	}
	a, b := 1+1/math.Sqrt2, -1/math.Sqrt2
	n := math.Hypot(a, b)
	if !near(float64(dst[0]), a/n, 1e-6) || !near(float64(dst[1]), b/n, 1e-6) {
		t.Fatalf("pool %v, want [%g %g]", dst, a/n, b/n)
	}
	if err := p.Pool(dst, regions, []int{2}, nil); !errors.Is(err, ErrDims) {
		t.Fatalf("counts not matching the regions: %v, want ErrDims", err)
	}
}

func TestLearnRejects(t *testing.T) {
	tests := []struct {
		name string
		data []float32
		in   int
		o    Options
	}{
		{"ragged", []float32{1, 2, 3}, 2, Options{Dims: 1}},
		{"dims above input", handCase, 2, Options{Dims: 3}},
		{"too few regions", handCase[:4], 2, Options{Dims: 2}},
		{"power", handCase, 2, Options{Dims: 1, Power: 2}},
		{"negative power", handCase, 2, Options{Dims: 1, Power: -0.5}},
		{"NaN power", handCase, 2, Options{Dims: 1, Power: math.NaN()}},
	}
	for _, tc := range tests {
		if _, err := Learn(tc.data, tc.in, tc.o); !errors.Is(err, ErrInput) {
			t.Errorf("%s: %v, want ErrInput", tc.name, err)
		}
	}
}

// TestWhitens: on random correlated data the projected (unnormalised) vectors have identity
// covariance, and the serialised form round-trips to the same hash and projections.
func TestWhitens(t *testing.T) {
	const in, n, dims = 8, 4000, 5
	rng := rand.New(rand.NewPCG(1, 2))
	mix := make([]float64, in*in)
	for k := range mix {
		mix[k] = rng.NormFloat64()
	}
	data := make([]float32, n*in)
	z := make([]float64, in)
	for i := 0; i < n; i++ {
		for k := range z {
			z[k] = rng.NormFloat64() * float64(k+1)
		}
		for r := 0; r < in; r++ {
			s := 3.0
			for k := range z {
				s += mix[r*in+k] * z[k]
			}
			data[i*in+r] = float32(s)
		}
	}
	p, err := Learn(data, in, Options{Dims: dims, MaxRegions: n, Power: DefaultPower})
	if err != nil {
		t.Fatal(err)
	}
	cov := make([]float64, dims*dims)
	y := make([]float64, dims)
	for i := 0; i < n; i++ {
		x := data[i*in : (i+1)*in]
		for d := 0; d < dims; d++ {
			s := -float64(p.bias[d])
			for k := range x {
				s += float64(p.P[d*in+k]) * float64(x[k])
			}
			y[d] = s
		}
		for a := range y {
			for b := range y {
				cov[a*dims+b] += y[a] * y[b] / n
			}
		}
	}
	for a := 0; a < dims; a++ {
		for b := 0; b < dims; b++ {
			want := 0.0
			if a == b {
				want = 1
			}
			if !near(cov[a*dims+b], want, 1e-3) {
				t.Fatalf("whitened covariance [%d,%d] = %g, want %g", a, b, cov[a*dims+b], want)
			}
		}
	}
	b, _ := p.MarshalBinary()
	q, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if q.Hash() != p.Hash() || q.Name() != p.Name() {
		t.Fatalf("round trip: %s vs %s", q.Name(), p.Name())
	}
	for _, bad := range [][]byte{b[:10], b[:len(b)-1], append([]byte("XXXX"), b[4:]...)} {
		if _, err := Unmarshal(bad); !errors.Is(err, ErrFormat) {
			t.Errorf("corrupt data: %v, want ErrFormat", err)
		}
	}
}

// TestPlainPCAName: plain PCA is its own kind of projection: its own name, a hash other than the
// whitening's of the same data, and its power survives the binary form.
func TestPlainPCAName(t *testing.T) {
	p, err := Learn(handCase, 2, Options{Dims: 2})
	if err != nil {
		t.Fatal(err)
	}
	w, err := Learn(handCase, 2, Options{Dims: 2, Power: DefaultPower})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.Name(), "pca2:") || !strings.HasPrefix(w.Name(), "pw2:") || p.Hash() == w.Hash() {
		t.Fatalf("names %s and %s", p.Name(), w.Name())
	}
	b, _ := p.MarshalBinary()
	q, err := Unmarshal(b)
	if err != nil || q.Power != 0 || q.Name() != p.Name() {
		t.Fatalf("round trip: %v %v", q, err)
	}
	// a power outside [0, 1] is not a projection this package writes
	binary.LittleEndian.PutUint64(b[16:], math.Float64bits(-1))
	if _, err := Unmarshal(b); !errors.Is(err, ErrFormat) {
		t.Fatalf("power -1: %v, want ErrFormat", err)
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		in    string
		dims  int
		power float64
		ok    bool
		bad   bool
	}{
		{"", 0, 0, false, false}, {"none", 0, 0, false, false},
		{"pw512", 512, DefaultPower, true, false}, {" PW256 ", 256, DefaultPower, true, false},
		{"pw512/0.25", 512, 0.25, true, false}, {"pw512/1", 512, 1, true, false},
		{"pca512", 512, 0, true, false}, {" PCA256 ", 256, 0, true, false}, {"pca16", 16, 0, true, false},
		{"pw512/0", 0, 0, false, true}, {"pw512/x", 0, 0, false, true}, {"pw512/1.5", 0, 0, false, true},
		{"pca512/0.5", 0, 0, false, true}, {"pca", 0, 0, false, true}, {"pca8", 0, 0, false, true},
		{"pw8", 0, 0, false, true}, {"pw", 0, 0, false, true}, {"pw99999", 0, 0, false, true},
		{"pc512", 0, 0, false, true}, {"512", 0, 0, false, true},
	}
	for _, tc := range tests {
		o, ok, err := ParseName(tc.in)
		if (err != nil) != tc.bad || ok != tc.ok || o.Dims != tc.dims || o.Power != tc.power {
			t.Errorf("%q: %+v %v %v", tc.in, o, ok, err)
		}
		if tc.bad && !errors.Is(err, ErrInput) {
			t.Errorf("%q: %v, want ErrInput", tc.in, err)
		}
	}
}
