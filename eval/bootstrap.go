package eval

import (
	"math"
	"math/rand"
	"sort"
)

// Interval is a difference of means with its 95 % confidence interval.
type Interval struct {
	Delta float64 `json:"delta"`
	Lo    float64 `json:"lo"`
	Hi    float64 `json:"hi"`
}

// Resamples is how many bootstrap resamples PairedBootstrap draws.
const Resamples = 10000

// PairedBootstrap is the mean of b[i]-a[i] (per-query figures of two configurations on the same
// queries) with a percentile bootstrap 95 % confidence interval: the queries are resampled with
// replacement, the same draw for both, so that the interval reflects how much the difference
// depends on which queries happen to be in the benchmark. The draws are fixed by seed; NaN pairs
// (a query one configuration could not run) are left out.
func PairedBootstrap(a, b []float64, resamples int, seed int64) Interval {
	var d []float64
	for i := range min(len(a), len(b)) {
		if x := b[i] - a[i]; !math.IsNaN(x) {
			d = append(d, x)
		}
	}
	if len(d) == 0 {
		return Interval{Delta: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
	}
	mean := func(pick func(int) int) float64 {
		var s float64
		for i := range d {
			s += d[pick(i)]
		}
		return s / float64(len(d))
	}
	out := Interval{Delta: mean(func(i int) int { return i })}
	rng := rand.New(rand.NewSource(seed))
	means := make([]float64, resamples)
	for r := range means {
		means[r] = mean(func(int) int { return rng.Intn(len(d)) })
	}
	sort.Float64s(means)
	out.Lo = means[int(0.025*float64(resamples))]
	out.Hi = means[min(int(0.975*float64(resamples)), resamples-1)]
	return out
}
