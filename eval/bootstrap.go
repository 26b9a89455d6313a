package eval

import (
	"math/rand/v2"
	"sort"
)

// BootstrapResamples is how many resamples PairedBootstrap draws for the reports' intervals.
const BootstrapResamples = 10000

// PairedBootstrap returns the mean of b[i]-a[i] and its percentile 95 % confidence interval from
// resamples resamples of the query set with replacement (Efron & Tibshirani), the same queries
// for both sides of each pair. The seed is fixed, so a report is reproducible.
func PairedBootstrap(a, b []float64, resamples int) (mean, lo, hi float64) {
	n := min(len(a), len(b))
	if n == 0 || resamples <= 0 {
		return 0, 0, 0
	}
	d := make([]float64, n)
	for i := range n {
		d[i] = b[i] - a[i]
		mean += d[i]
	}
	mean /= float64(n)
	r := rand.New(rand.NewPCG(13, 2016))
	means := make([]float64, resamples)
	for k := range means {
		var s float64
		for range n {
			s += d[r.IntN(n)]
		}
		means[k] = s / float64(n)
	}
	sort.Float64s(means)
	at := func(q float64) float64 { return means[min(resamples-1, max(0, int(q*float64(resamples))))] }
	return mean, at(0.025), at(0.975)
}

// compareToBaseline fills the comparison fields of every report after the first.
func compareToBaseline(reports []Report) {
	if len(reports) < 2 {
		return
	}
	base := reports[0]
	for i := range reports[1:] {
		r := &reports[i+1]
		r.Baseline = base.Config.Label
		if len(r.PerQueryAP) == len(base.PerQueryAP) {
			m, lo, hi := PairedBootstrap(base.PerQueryAP, r.PerQueryAP, BootstrapResamples)
			r.MAPDiff, r.MAPDiffCI95 = &m, &[2]float64{lo, hi}
		}
		if base.EmbedSeconds > 0 {
			c := r.EmbedSeconds / base.EmbedSeconds
			r.EmbedCost = &c
		}
	}
}
