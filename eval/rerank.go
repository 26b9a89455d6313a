package eval

import (
	"context"
	"fmt"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/rerank"
)

// Re-ranking configurations (Config.Rerank) and their comparison with the first configuration.

// addDeltas sets each report's mAP (and N-S) difference from the first report with its paired
// bootstrap interval.
func addDeltas(ds *Dataset, reports []Report) {
	for i := range reports[1:] {
		r := &reports[i+1]
		iv := PairedBootstrap(reports[0].APs, r.APs, Resamples, 1)
		r.MAPDelta = &iv
		if reports[0].EmbedSeconds > 0 {
			c := r.EmbedSeconds / reports[0].EmbedSeconds
			r.EmbedCost = &c
		}
		if ds.NS {
			iv := PairedBootstrap(reports[0].NSs, r.NSs, Resamples, 1)
			r.NSDelta = &iv
		}
	}
}

// useRerankParams gives the collection the configuration's re-ranking parameters (rebuilding its
// rows when they differ from the ones it has).
func useRerankParams(col *index.Collection, c Config) error {
	p := rerank.DefaultParams()
	switch {
	case c.KRScale < 0:
		p.RowScale = 0
	case c.KRScale > 0:
		p.RowScale = c.KRScale
	}
	if col.RerankParams() == p {
		return nil
	}
	if err := col.SetRerankParams(p); err != nil {
		return fmt.Errorf("eval: re-ranking parameters: %w", err)
	}
	return nil
}

func ids(res []index.Result) []string {
	out := make([]string, len(res))
	for i, r := range res {
		out[i] = r.ID
	}
	return out
}

// similar asks for the items most like a database item, as the server's similar endpoint does:
// the item itself is excluded from the neighbours, then ranked first when the dataset counts it.
func similar(ctx context.Context, col *index.Collection, id string, includeSelf bool, opts index.SearchOptions) ([]index.Result, error) {
	opts.ExcludeIDs = nil
	if includeSelf {
		opts.K--
	}
	res, err := col.Similar(ctx, id, opts)
	if err != nil || !includeSelf {
		return res, err
	}
	return append([]index.Result{{ID: id, Score: 1}}, res...), nil
}
