package intel

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// Duplicate tiers, strongest first. TierNone is "not a duplicate".
const (
	TierExact   = "exact"
	TierNear    = "near"
	TierSimilar = "similar"
	TierNone    = "none"
)

// Tiers holds the calibrated thresholds (config intel.*). A near-duplicate (a re-encoded, resized,
// slightly cropped, watermarked or relit copy of one photo) needs a cosine of at least Near, a
// luminance PixelScore of at least Pixel (cosines alone overlap with other photos of the same
// product) and a chroma agreement of at least Chroma (the luminance of a mug in five colours is
// nearly the same: the colour variants of a product are similar, not near-duplicates).
type Tiers struct {
	Near    float32 `json:"near"`    // cosine gate for near-duplicates
	Pixel   float64 `json:"pixel"`   // PixelScore.Luma needed on top of Near
	Chroma  float64 `json:"chroma"`  // PixelScore.Chroma needed on top of Near
	Similar float32 `json:"similar"` // other photos of the same product
}

// TiersFrom reads the thresholds of the configuration.
func TiersFrom(c config.Intel) Tiers {
	return Tiers{Near: float32(c.NearDuplicateScore), Pixel: c.PixelMatch, Chroma: c.ChromaMatch, Similar: float32(c.SimilarScore)}
}

// exactScore: identical pixels give identical vectors, so only pairs this close can be exact; the
// thumbnail comparison then decides (a JPEG re-encode at the same size scores ~0.99-0.999).
const exactScore = 0.9995

// PairTier classifies a pair from its cosine, whether the stored thumbnails are byte-identical
// (thumbnails are re-encoded deterministically from decoded pixels: equal thumbnails mean equal
// pixels at thumbnail resolution) and its PixelScore (only consulted at or above Near).
func (t Tiers) PairTier(score float32, sameThumb bool, p PixelScore) string {
	switch {
	case sameThumb && score >= exactScore:
		return TierExact
	case score >= t.Near && p.Luma >= t.Pixel && p.Chroma >= t.Chroma:
		return TierNear
	case score >= t.Similar:
		return TierSimilar
	}
	return TierNone
}

// Threshold is the cosine gate of a tier ("" means near). ErrInvalidTier for an unknown tier.
func (t Tiers) Threshold(tier string) (float32, error) {
	switch tier {
	case TierExact:
		return exactScore, nil
	case TierNear, "":
		return t.Near, nil
	case TierSimilar:
		return t.Similar, nil
	}
	return 0, fmt.Errorf("%w: %q (want exact, near or similar)", ErrInvalidTier, tier)
}

// Rank orders tiers: exact 3, near 2, similar 1, anything else 0.
func Rank(tier string) int {
	switch tier {
	case TierExact:
		return 3
	case TierNear:
		return 2
	case TierSimilar:
		return 1
	}
	return 0
}

// Detector classifies stored items into duplicate tiers and diversifies result lists. It is cheap
// to make (one per request is fine) and safe for concurrent use: the signature cache is shared.
type Detector struct {
	Tiers Tiers
	// Diversification (config intel.diversify_*): by cosine alone (DivScore) unless DivPixels,
	// then by the full tier test at DivTier.
	DivScore  float32
	DivPixels bool
	DivTier   string
	cache     *SignatureCache
}

// ForFingerprint returns c with its cosine thresholds (calibrated on the fast profile's vectors)
// mapped onto the vectors of a collection of that fingerprint (spec.ThresholdFor: regional
// profiles score unrelated photos higher). Pixel thresholds do not depend on the vectors.
func ForFingerprint(c config.Intel, fingerprint string) config.Intel {
	c.NearDuplicateScore = spec.ThresholdFor(fingerprint, c.NearDuplicateScore)
	c.SimilarScore = spec.ThresholdFor(fingerprint, c.SimilarScore)
	c.DiversifyScore = spec.ThresholdFor(fingerprint, c.DiversifyScore)
	return c
}

// NewDetector reads the configuration; cache may be nil (nothing is cached across calls).
func NewDetector(c config.Intel, cache *SignatureCache) *Detector {
	return &Detector{Tiers: TiersFrom(c), DivScore: float32(c.DiversifyScore), DivPixels: c.DiversifyPixels,
		DivTier: c.DiversifyTier, cache: cache}
}

// pairTier classifies two stored items from their cosine and thumbnails; pixels are compared only
// past the near-duplicate cosine gate.
func (d *Detector) pairTier(sigs *sigCache, score float32, aID string, aThumb []byte, bID string, bThumb []byte) string {
	if score < d.Tiers.Near {
		return d.Tiers.PairTier(score, false, PixelScore{})
	}
	same := len(aThumb) > 0 && bytes.Equal(aThumb, bThumb)
	return d.Tiers.PairTier(score, same, sigs.compare(aID, aThumb, bID, bThumb))
}

// Match is a stored item that a new one duplicates.
type Match struct {
	ID    string  `json:"id"`
	Score float32 `json:"score"`
	Tier  string  `json:"tier"` // exact or near
}

// FindDuplicate returns the closest stored item other than id that is an exact or near duplicate
// of an item with vector vec and thumbnail thumb (as ingest is about to store it), or nil. It
// compares with the 3 nearest items. A failed search is an error, never "no duplicate": a caller
// that refuses or merges duplicates must not store the photo as new because the check could not
// run. The error wraps the index's (index.ErrClosed, index.ErrDropped, the context's), or
// index.ErrStorage when a candidate's thumbnail cannot be read.
func (d *Detector) FindDuplicate(ctx context.Context, col *index.Collection, id string, vec []float32, thumb []byte) (*Match, error) {
	res, err := col.Search(ctx, vec, index.SearchOptions{K: 3, MinScore: &d.Tiers.Near, ExcludeIDs: []string{id}})
	if err != nil {
		return nil, fmt.Errorf("duplicate check: %w", err)
	}
	sigs := newSigCache(d.cache)
	for _, r := range res {
		other, err := col.Thumbnail(r.ID)
		switch {
		case errors.Is(err, index.ErrNotFound):
			continue // deleted since the search: no longer a duplicate
		case err != nil:
			return nil, fmt.Errorf("%w: duplicate check: thumbnail of %q: %w", index.ErrStorage, r.ID, err)
		}
		// "\x00" cannot start a stored id (no control characters): the new item's cache key.
		tier := d.pairTier(sigs, r.Score, "\x00new", thumb, r.ID, other)
		if tier == TierExact || tier == TierNear {
			return &Match{ID: r.ID, Score: r.Score, Tier: tier}, nil
		}
	}
	return nil, nil
}
