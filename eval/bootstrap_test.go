package eval

import (
	"math"
	"math/rand"
	"testing"
)

func TestPairedBootstrap(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	n := 400
	a, same, better, noisy := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range a {
		a[i] = rng.Float64()
		same[i] = a[i]
		better[i] = a[i] + 0.05
		noisy[i] = a[i] + rng.NormFloat64()*0.3 // no real difference, much noise
	}
	for _, tc := range []struct {
		name     string
		b        []float64
		delta    float64
		excludes bool // the interval excludes 0
	}{
		{"identical", same, 0, false},
		{"shifted by 0.05", better, 0.05, true},
		{"noise only", noisy, math.NaN(), false},
	} {
		iv := PairedBootstrap(a, tc.b, Resamples, 7)
		if !math.IsNaN(tc.delta) && math.Abs(iv.Delta-tc.delta) > 1e-9 {
			t.Errorf("%s: delta %v, want %v", tc.name, iv.Delta, tc.delta)
		}
		if !(iv.Lo <= iv.Delta && iv.Delta <= iv.Hi) {
			t.Errorf("%s: interval [%v, %v] does not hold the delta %v", tc.name, iv.Lo, iv.Hi, iv.Delta)
		}
		if got := iv.Lo > 0 || iv.Hi < 0; got != tc.excludes {
			t.Errorf("%s: interval [%.4f, %.4f] excludes 0: %v, want %v", tc.name, iv.Lo, iv.Hi, got, tc.excludes)
		}
	}
	if iv := PairedBootstrap(a, noisy, Resamples, 7); iv.Hi-iv.Lo < 0.04 || iv.Hi-iv.Lo > 0.08 {
		// sd 0.3 / sqrt(400) = 0.015: a 95 % interval about 4 sd wide.
		t.Errorf("noise interval width %.4f, want about 0.06", iv.Hi-iv.Lo)
	}
	if iv := PairedBootstrap(nil, nil, 100, 1); !math.IsNaN(iv.Delta) {
		t.Errorf("empty input: %+v", iv)
	}
}
