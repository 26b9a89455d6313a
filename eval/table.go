package eval

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// WriteTable prints reports side by side: one column per configuration, HNSW rows then exact rows.
func WriteTable(w io.Writer, reports []Report) error {
	if len(reports) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	r0 := reports[0]
	fmt.Fprintf(w, "dataset %s: %d items, %d queries, model %s, ranking depth %d\n", r0.Dataset, r0.Items, r0.Queries, r0.Model, r0.Depth)
	row := func(name string, f func(Report) string) {
		cells := []string{name}
		for _, r := range reports {
			cells = append(cells, f(r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	row("", func(r Report) string { return r.Config.Label })
	f3 := metricRows(row, r0)
	if len(reports) > 1 {
		deltaRows(row, r0.NSScore != nil)
	}
	if r0.ANNRecall != nil {
		row("hnsw recall@10 vs exact", func(r Report) string {
			if r.ANNRecall == nil {
				return "-"
			}
			return f3(*r.ANNRecall)
		})
	}
	if len(reports) > 1 {
		row("embed cost vs first", func(r Report) string {
			if r.EmbedCost == nil {
				return "1.00x"
			}
			return fmt.Sprintf("%.2fx", *r.EmbedCost)
		})
	}
	row("embeddings/s", func(r Report) string { return fmt.Sprintf("%.1f", r.EmbedPerSec) })
	row("failed images", func(r Report) string { return fmt.Sprint(r.Failed) })
	row("run time (s)", func(r Report) string { return fmt.Sprintf("%.1f", r.TotalSeconds) })
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r0.PerGroup) > 0 {
		fmt.Fprintf(w, "\nper class (hnsw, %s):\n", r0.Config.Label)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "class\tqueries\tprecision@k\tmAP@k\tk-NN acc")
		names := make([]string, 0, len(r0.PerGroup))
		for g := range r0.PerGroup {
			names = append(names, g)
		}
		sort.Strings(names)
		for _, g := range names {
			m := r0.PerGroup[g]
			fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.4f\t%.4f\n", g, m.Queries, m.Precision, m.MAPAtK, m.KNN)
		}
		return tw.Flush()
	}
	return nil
}

// metricRows prints the retrieval metrics of the HNSW and exact passes; it returns the number
// format the other rows share.
func metricRows(row func(string, func(Report) string), r0 Report) func(float64) string {
	f3 := func(v float64) string { return fmt.Sprintf("%.4f", v) }
	modes := []struct {
		name string
		get  func(Report) *Metrics
	}{
		{"hnsw", func(r Report) *Metrics { return &r.Metrics }},
		{"exact", func(r Report) *Metrics { return r.Exact }},
	}
	for _, mode := range modes {
		if mode.get(r0) == nil {
			continue
		}
		m0 := mode.get(r0)
		val := func(f func(*Metrics) string) func(Report) string {
			return func(r Report) string {
				if m := mode.get(r); m != nil {
					return f(m)
				}
				return "-"
			}
		}
		row(mode.name+" mAP", val(func(m *Metrics) string { return f3(m.MAP) }))
		if m0.NSScore != nil {
			row(mode.name+" N-S score", val(func(m *Metrics) string { return f3(*m.NSScore) }))
		}
		for _, k := range SortedKs(m0.PrecisionAtK) {
			row(mode.name+" precision@"+k, val(func(m *Metrics) string { return f3(m.PrecisionAtK[k]) }))
		}
		for _, k := range SortedKs(m0.RecallAtK) {
			row(mode.name+" recall@"+k, val(func(m *Metrics) string { return f3(m.RecallAtK[k]) }))
		}
		for _, k := range SortedKs(m0.MAPAtK) {
			row(mode.name+" mAP@"+k, val(func(m *Metrics) string { return f3(m.MAPAtK[k]) }))
		}
		if m0.KNNAccuracy != nil {
			row(mode.name+" k-NN accuracy", val(func(m *Metrics) string { return f3(*m.KNNAccuracy) }))
		}
		if m0.Top1Score != nil {
			row(mode.name+" top-1 score p10/p50/p90", val(func(m *Metrics) string {
				if m.Top1Score == nil {
					return "-"
				}
				return fmt.Sprintf("%.3f/%.3f/%.3f", m.Top1Score.P10, m.Top1Score.P50, m.Top1Score.P90)
			}))
		}
		row(mode.name+" queries/s", val(func(m *Metrics) string { return fmt.Sprintf("%.0f", m.QPS) }))
	}
	return f3
}

// deltaRows prints the differences from the first configuration with their 95 % intervals.
func deltaRows(row func(string, func(Report) string), ns bool) {
	delta := func(get func(Report) *Interval) func(Report) string {
		return func(r Report) string {
			iv := get(r)
			if iv == nil {
				return "-"
			}
			return fmt.Sprintf("%+.4f [%+.4f, %+.4f]", iv.Delta, iv.Lo, iv.Hi)
		}
	}
	row("hnsw mAP vs first, 95% CI", delta(func(r Report) *Interval { return r.MAPDelta }))
	if ns {
		row("hnsw N-S vs first, 95% CI", delta(func(r Report) *Interval { return r.NSDelta }))
	}
}
