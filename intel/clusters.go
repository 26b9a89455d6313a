package intel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/lookalike/lookalike/index"
)

// DupMember is one item of a cluster; Score and Tier are relative to the cluster's seed.
type DupMember struct {
	ID       string          `json:"id"`
	Score    float32         `json:"score"`
	Tier     string          `json:"tier"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// DupCluster is one group of duplicates: the seed (its smallest id) first.
type DupCluster struct {
	Items []DupMember `json:"items"`
}

// DupPage is one page of clusters.
type DupPage struct {
	Tier       string       `json:"tier"`
	Threshold  float32      `json:"threshold"`
	Clusters   []DupCluster `json:"clusters"`
	Scanned    int          `json:"scanned"`
	NextCursor string       `json:"next_cursor"`
}

// maxClusterSize bounds the neighbours fetched per item (the work per search).
const maxClusterSize = 50

// clusterer finds the clusters of one tier. Every item X has a label L(X): the smallest id among
// X and its neighbours in the tier, as X's own search sees them. An item S with L(S) = S seeds a
// cluster: S and its neighbours X with L(X) = S. L is a function of the item, so every item is in
// at most one cluster (the clusters are disjoint), and whether an item is in one does not depend
// on which page asked: paging needs no state. Greedy in id order: a smaller seed claims first; an
// item whose smallest neighbour is itself claimed by a smaller one is in no cluster (it shows up
// once the review has resolved the cluster in the way).
type clusterer struct {
	d      *Detector
	col    *index.Collection
	tier   string
	th     float32
	sigs   *sigCache
	labels map[string]string // memo of L within one call
}

func (d *Detector) clusterer(col *index.Collection, tier string) (*clusterer, error) {
	if tier == "" {
		tier = TierNear
	}
	th, err := d.Tiers.Threshold(tier)
	if err != nil {
		return nil, err
	}
	return &clusterer{d: d, col: col, tier: tier, th: th, sigs: newSigCache(d.cache), labels: map[string]string{}}, nil
}

// neighbours returns id's neighbours in the tier (or a stronger one), in rank order. With
// tiered false (labels only) and the similar tier, every result past the gate is in: no pixels.
func (c *clusterer) neighbours(ctx context.Context, id string, tiered bool) ([]DupMember, error) {
	res, err := c.col.Similar(ctx, id, index.SearchOptions{K: maxClusterSize, MinScore: &c.th})
	if err != nil || len(res) == 0 {
		return nil, err
	}
	if !tiered && c.tier == TierSimilar {
		out := make([]DupMember, len(res))
		for i, r := range res {
			out[i] = DupMember{ID: r.ID, Score: r.Score, Tier: TierSimilar}
		}
		return out, nil
	}
	thumb, _ := c.col.Thumbnail(id)
	var out []DupMember
	for _, r := range res {
		var other []byte
		if r.Score >= c.d.Tiers.Near {
			other, _ = c.col.Thumbnail(r.ID)
		}
		pt := c.d.pairTier(c.sigs, r.Score, id, thumb, r.ID, other)
		if Rank(pt) >= Rank(c.tier) {
			out = append(out, DupMember{ID: r.ID, Score: r.Score, Tier: pt, Metadata: r.Metadata})
		}
	}
	return out, nil
}

// label is L(id); errors.Is(err, index.ErrNotFound) when id was deleted meanwhile.
func (c *clusterer) label(ctx context.Context, id string) (string, error) {
	if l, ok := c.labels[id]; ok {
		return l, nil
	}
	ns, err := c.neighbours(ctx, id, false)
	if err != nil {
		return "", err
	}
	return c.setLabel(id, ns), nil
}

func (c *clusterer) setLabel(id string, ns []DupMember) string {
	l := id
	for _, n := range ns {
		l = min(l, n.ID)
	}
	c.labels[id] = l
	return l
}

// cluster returns the cluster seeded by id: nil when id seeds none (it has a smaller neighbour,
// or none of its neighbours is left to it).
func (c *clusterer) cluster(ctx context.Context, it index.Item) (*DupCluster, error) {
	ns, err := c.neighbours(ctx, it.ID, true)
	if err != nil {
		return nil, err
	}
	if c.setLabel(it.ID, ns) != it.ID {
		return nil, nil // not a seed: a smaller neighbour claims it
	}
	cl := &DupCluster{Items: []DupMember{{ID: it.ID, Score: 1, Tier: TierExact, Metadata: it.Metadata}}}
	for _, n := range ns {
		l, err := c.label(ctx, n.ID)
		if errors.Is(err, index.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		if l == it.ID {
			cl.Items = append(cl.Items, n)
		}
	}
	if len(cl.Items) < 2 {
		return nil, nil
	}
	return cl, nil
}

// FindDuplicates scans up to limit items with ids after cursor and returns the clusters they seed
// in tier ("" = near). Clusters are disjoint (see clusterer) and each is reported on the page that
// scans its seed, so paging needs no state between pages. The work per page is bounded: at most
// limit x (1 + maxClusterSize) nearest-neighbour searches, whatever the catalog's size, and far
// fewer in practice (only seeds look at their neighbours' neighbours).
func (d *Detector) FindDuplicates(ctx context.Context, col *index.Collection, tier, cursor string, limit int) (DupPage, error) {
	c, err := d.clusterer(col, tier)
	if err != nil {
		return DupPage{}, err
	}
	page := DupPage{Tier: c.tier, Threshold: c.th, Clusters: []DupCluster{}}
	items, next, err := col.List(cursor, limit)
	if err != nil {
		return page, err
	}
	page.NextCursor = next
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return page, err
		}
		page.Scanned++
		cl, err := c.cluster(ctx, it)
		if errors.Is(err, index.ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return page, err
		}
		if cl != nil {
			page.Clusters = append(page.Clusters, *cl)
		}
	}
	return page, nil
}

// ClusterOf returns the cluster of tier that holds id, as FindDuplicates reports it. ErrNoCluster
// when id is in none; index.ErrNotFound when id does not exist.
func (d *Detector) ClusterOf(ctx context.Context, col *index.Collection, id, tier string) (DupCluster, error) {
	c, err := d.clusterer(col, tier)
	if err != nil {
		return DupCluster{}, err
	}
	seed, err := c.label(ctx, id)
	if err != nil {
		return DupCluster{}, err
	}
	it, err := col.Get(seed)
	if err != nil {
		return DupCluster{}, err
	}
	cl, err := c.cluster(ctx, it)
	if err != nil {
		return DupCluster{}, err
	}
	if cl == nil || !slices.ContainsFunc(cl.Items, func(m DupMember) bool { return m.ID == id }) {
		return DupCluster{}, fmt.Errorf("%w: item %q at tier %s", ErrNoCluster, id, c.tier)
	}
	return *cl, nil
}
