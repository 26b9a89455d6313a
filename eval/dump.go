package eval

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// Dump is one embedding variant of a run as Options.DumpDir writes it: the vectors its index was
// built from and what each query counts as relevant. It lets a ranking be recomputed outside the
// project (scripts/rerank-reference runs the k-reciprocal re-ranking's dense reference on it,
// each probe alone and all probes together) from exactly the vectors the run measured.
type Dump struct {
	Dataset string `json:"dataset"`
	// Config is the label of the first configuration that built the variant.
	Config string `json:"config"`
	Model  string `json:"model"`
	// Depth is how many results the run ranked per query; OxfordAP says AP is the Oxford
	// trapezoid; IncludeSelf, that a query that is a database item keeps it in its ranking.
	Depth       int         `json:"depth"`
	OxfordAP    bool        `json:"oxford_ap"`
	IncludeSelf bool        `json:"include_self"`
	Database    []DumpItem  `json:"database"`
	Queries     []DumpQuery `json:"queries"`
}

// DumpItem is one embedded database item; items that failed to embed are left out.
type DumpItem struct {
	ID     string    `json:"id"`
	Group  string    `json:"group,omitempty"`
	Vector []float32 `json:"vector"`
}

// DumpQuery is one query. Vector is absent for a query that is a database item (Self): its
// vector is that item's. Positives and Junk are explicit where the dataset has them (Oxford);
// otherwise the positives are the items of Group.
type DumpQuery struct {
	ID        string    `json:"id"`
	Self      string    `json:"self,omitempty"`
	Group     string    `json:"group,omitempty"`
	Vector    []float32 `json:"vector,omitempty"`
	Positives []string  `json:"positives,omitempty"`
	Junk      []string  `json:"junk,omitempty"`
}

// writeDump writes variant number n's vectors to dir/variant-<n>.json.
func writeDump(dir string, n int, ds *Dataset, c Config, vs *vectorSet, o Options) error {
	d := Dump{Dataset: ds.Name, Config: c.String(), Model: vs.model, Depth: o.Depth, OxfordAP: ds.OxfordAP, IncludeSelf: ds.IncludeSelf}
	for _, it := range ds.Database {
		if v, ok := vs.db[it.ID]; ok {
			d.Database = append(d.Database, DumpItem{ID: it.ID, Group: it.Group, Vector: v})
		}
	}
	for _, q := range ds.Queries {
		v, ok := vs.queries[q.ID]
		if q.Self == "" && !ok {
			continue // failed to embed: the run skipped it too
		}
		d.Queries = append(d.Queries, DumpQuery{ID: q.ID, Self: q.Self, Group: q.Group, Vector: v,
			Positives: slices.Sorted(maps.Keys(q.Positives)), Junk: slices.Sorted(maps.Keys(q.Junk))})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dump vectors: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("variant-%d.json", n))
	b, err := json.Marshal(d)
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		return fmt.Errorf("dump vectors to %q: %w", path, err)
	}
	o.Logger.Info("eval vectors dumped", "path", path, "config", d.Config, "items", len(d.Database), "queries", len(d.Queries))
	return nil
}
