package lifecycle

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
)

// Arm is one generation's side of a comparison.
type Arm struct {
	Collection string    `json:"collection"`
	Generation int       `json:"generation"`
	Model      string    `json:"model"`
	Count      int       `json:"count"`
	Queries    int       `json:"queries"`
	TopScore   Quantiles `json:"top_score"`
	LatencyMS  Quantiles `json:"latency_ms"`
	// Probes are the labelled probe sets' results on this generation (Options.Probes; absent when
	// none is configured for the collection); ProbePrecision is their precision@k over all probes.
	Probes         map[string]ProbeScore `json:"probes,omitempty"`
	ProbePrecision *float64              `json:"probe_precision,omitempty"`
}

// ProbeScore is one probe set's result on one generation (quality.probes).
type ProbeScore struct {
	Probes    int     `json:"probes"`
	K         int     `json:"k"`
	Precision float64 `json:"precision_at_k"`
	HitRate   float64 `json:"hit_rate_at_k"`
}

// Quantiles summarise a distribution.
type Quantiles struct {
	P10 float64 `json:"p10"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
}

// Report compares the live and the other generation of a rebuild on the same queries.
type Report struct {
	Job Job `json:"rebuild"`
	// Live and Shadow are the arms (Shadow is the generation that is not live).
	Live   Arm `json:"live"`
	Shadow Arm `json:"shadow"`
	// Overlap10 is the mean share of top-10 ids the two arms have in common.
	Overlap10 float64 `json:"overlap_at_10"`
	// Queries is how many queries both arms answered.
	Queries int `json:"queries"`
}

// Compare embeds each query image with both arms' engines, searches both (top 10) and reports
// their agreement, score distributions and latencies, and each arm's probe sets' precision.
func (m *Manager) Compare(ctx context.Context, base string, queries [][]byte) (Report, error) {
	j, err := m.Status(base)
	if err != nil {
		return Report{}, err
	}
	if j.State == StateLearning {
		return Report{Job: j}, fmt.Errorf("%w: the tune of %s is still learning its projection (no shadow yet)", ErrNotReady, base)
	}
	live, other, err := m.pair(j)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Job: j}
	var lists [2][][]string
	for i, col := range []*index.Collection{live, other} {
		eng, ok := m.opts.Engine(col.Fingerprint())
		if !ok {
			return rep, fmt.Errorf("%w: no engine for %s", ErrUnknownModel, col.Name())
		}
		arm := Arm{Collection: col.Name(), Generation: col.Generation(), Model: eng.Info().ModelID, Count: col.Info().Count}
		var tops, lat []float64
		for _, q := range queries {
			start := time.Now()
			embs, err := m.embedThrottled(ctx, eng, []embed.Image{{Data: q}})
			if err != nil {
				return rep, err
			}
			if embs[0].Err != nil {
				continue
			}
			res, err := col.Search(ctx, embs[0].Vector, index.SearchOptions{K: 10})
			if err != nil {
				return rep, err
			}
			lat = append(lat, float64(time.Since(start).Microseconds())/1000)
			ids := make([]string, len(res))
			for k, r := range res {
				ids[k] = r.ID
			}
			lists[i] = append(lists[i], ids)
			if len(res) > 0 {
				tops = append(tops, float64(res[0].Score))
			}
		}
		arm.Queries, arm.TopScore, arm.LatencyMS = len(lat), quantiles(tops), quantiles(lat)
		if err := m.scoreProbes(ctx, &arm, col, eng); err != nil {
			return rep, err
		}
		if i == 0 {
			rep.Live = arm
		} else {
			rep.Shadow = arm
		}
	}
	n := min(len(lists[0]), len(lists[1]))
	for k := 0; k < n; k++ {
		common := 0
		for _, id := range lists[0][k] {
			if slices.Contains(lists[1][k], id) {
				common++
			}
		}
		rep.Overlap10 += float64(common) / float64(max(len(lists[0][k]), 1))
	}
	if n > 0 {
		rep.Overlap10 /= float64(n)
	}
	rep.Queries = n
	return rep, nil
}

func quantiles(v []float64) Quantiles {
	if len(v) == 0 {
		return Quantiles{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	at := func(p float64) float64 { return s[min(int(p*float64(len(s))), len(s)-1)] }
	return Quantiles{P10: at(0.1), P50: at(0.5), P90: at(0.9)}
}

// scoreProbes fills the arm's probe results (Options.Probes).
func (m *Manager) scoreProbes(ctx context.Context, arm *Arm, col *index.Collection, eng Embedder) error {
	if m.opts.Probes == nil {
		return nil
	}
	scores, err := m.opts.Probes(ctx, col, eng)
	if err != nil || len(scores) == 0 {
		return err
	}
	var sum float64
	n := 0
	for _, sc := range scores {
		sum += sc.Precision * float64(sc.Probes)
		n += sc.Probes
	}
	arm.Probes = scores
	if n > 0 {
		p := sum / float64(n)
		arm.ProbePrecision = &p
	}
	return nil
}
