package intel

import (
	"github.com/lookalike/lookalike/index"
)

// DiversifyWindow bounds the work of Diversify: each result is compared with at most this many
// kept results, the last ones kept (the nearest in rank). Copies of one photo score within a few
// hundredths of each other against any query, so they sit next to each other in a ranking; the
// window turns the k² comparisons of a long list (k=1000: 500 000 vector products) into k x 32.
const DiversifyWindow = 32

// Diversify drops every result that is a copy of a better-ranked kept one, so a page shows
// different products instead of copies of one photo. By default a copy is a result whose vector
// is at least DivScore (cosine) close: a vector read per result from memory, no thumbnail decoded,
// so similar-by-id stays in the low milliseconds; it misses the heavier edits (crops, watermarks).
// With DivPixels a copy is a result in DivTier (or a stronger tier), by the full tier test of
// FindDuplicates (thumbnails read from the store, pixels compared past the cosine gate).
// Results deleted meanwhile are dropped. The order of res is kept.
func (d *Detector) Diversify(col *index.Collection, res []index.Result) []index.Result {
	type cand struct {
		id    string
		vec   []float32
		thumb []byte
	}
	load := func(id string) (cand, error) {
		v, err := col.Vector(id)
		return cand{id: id, vec: v}, err
	}
	isCopy := func(k, c *cand) bool { return index.Dot(k.vec, c.vec) >= d.DivScore }
	if d.DivPixels {
		sigs := newSigCache(d.cache)
		gate, err := d.Tiers.Threshold(d.DivTier)
		if err != nil {
			gate = d.Tiers.Near
		}
		load = func(id string) (cand, error) {
			it, err := col.Get(id)
			return cand{id: id, vec: it.Vector, thumb: it.Thumbnail}, err
		}
		isCopy = func(k, c *cand) bool {
			s := index.Dot(k.vec, c.vec)
			return s >= gate && Rank(d.pairTier(sigs, s, k.id, k.thumb, c.id, c.thumb)) >= Rank(d.DivTier)
		}
	}
	kept := res[:0:0]
	var keptC []cand
	for _, r := range res {
		c, err := load(r.ID)
		if err != nil {
			continue // deleted meanwhile
		}
		dup := false
		for i := len(keptC) - 1; i >= max(0, len(keptC)-DiversifyWindow); i-- {
			if isCopy(&keptC[i], &c) {
				dup = true
				break
			}
		}
		if !dup {
			kept = append(kept, r)
			if len(keptC) == 2*DiversifyWindow { // only the window is ever read again
				keptC = append(keptC[:0], keptC[DiversifyWindow:]...)
			}
			keptC = append(keptC, c)
		}
	}
	return kept
}
