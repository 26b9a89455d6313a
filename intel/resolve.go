package intel

import (
	"context"
	"fmt"
	"slices"

	"github.com/lookalike/lookalike/index"
)

// Resolution is the outcome of resolving a duplicate cluster: one item kept, the others moved to
// the collection's trash (index.Collection.Trash), where they can be restored until purged.
type Resolution struct {
	Keep    string   `json:"keep"`
	Tier    string   `json:"tier"`
	Trashed []string `json:"trashed"` // moved to the trash (with DryRun: would be)
	Missing []string `json:"missing"` // listed but already gone
	DryRun  bool     `json:"dry_run"`
}

// Resolve keeps keep and moves the others to the trash. With ids, exactly those are moved (the
// person reviewing picked them); without, the other members of keep's cluster in tier are, which
// the similar tier refuses (ErrIDsRequired): similar items are other photos of a product, never
// copies, and a similar cluster is a star of photos that need not resemble each other. keep must
// exist and must not be listed (ErrKeepListed). dryRun reports without moving anything.
func (d *Detector) Resolve(ctx context.Context, col *index.Collection, keep, tier string, ids []string, dryRun bool) (Resolution, error) {
	if tier == "" {
		tier = TierNear
	}
	res := Resolution{Keep: keep, Tier: tier, Trashed: []string{}, Missing: []string{}, DryRun: dryRun}
	if _, err := d.Tiers.Threshold(tier); err != nil {
		return res, err
	}
	if _, ok := col.Has(keep); !ok {
		return res, fmt.Errorf("%w: item %q in %q (the one to keep)", index.ErrNotFound, keep, col.Name())
	}
	if slices.Contains(ids, keep) {
		return res, fmt.Errorf("%w: %q", ErrKeepListed, keep)
	}
	if len(ids) == 0 {
		if tier == TierSimilar {
			return res, fmt.Errorf("%w: the similar tier is resolved item by item: list the ids to delete", ErrIDsRequired)
		}
		cl, err := d.ClusterOf(ctx, col, keep, tier)
		if err != nil {
			return res, err
		}
		for _, m := range cl.Items {
			if m.ID != keep {
				ids = append(ids, m.ID)
			}
		}
	}
	var present []string
	for _, id := range ids {
		if _, ok := col.Has(id); ok && !slices.Contains(present, id) {
			present = append(present, id)
		} else if !ok {
			res.Missing = append(res.Missing, id)
		}
	}
	if dryRun {
		res.Trashed = append(res.Trashed, present...)
		return res, nil
	}
	moved, err := col.Trash(ctx, present...)
	if err != nil {
		return res, err
	}
	res.Trashed = append(res.Trashed, moved...)
	for _, id := range present {
		if !slices.Contains(moved, id) { // deleted between the check and the move
			res.Missing = append(res.Missing, id)
		}
	}
	return res, nil
}
