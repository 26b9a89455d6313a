package intel

import "errors"

// Sentinel errors. Callers branch on them with errors.Is; the returned errors wrap them with detail.
var (
	// ErrInvalidTier: a tier other than exact, near or similar.
	ErrInvalidTier = errors.New("intel: invalid tier")
	// ErrIDsRequired: resolving a cluster of the similar tier without listing the ids to delete.
	// Similar items are other photos of (probably) the same product, never copies: a person must
	// pick them one by one.
	ErrIDsRequired = errors.New("intel: explicit ids required")
	// ErrKeepListed: a resolution that lists the item to keep among the items to delete.
	ErrKeepListed = errors.New("intel: the kept item is listed for deletion")
	// ErrNoCluster: the item to keep belongs to no duplicate cluster of the tier.
	ErrNoCluster = errors.New("intel: not in a duplicate cluster")
	// ErrNoThumbnail: an explanation for an item that has no stored thumbnail.
	ErrNoThumbnail = errors.New("intel: no stored thumbnail")
	// ErrNoFeatureMap: an explanation from an embedding without a spatial feature map, or one whose
	// shape does not match the query.
	ErrNoFeatureMap = errors.New("intel: no usable feature map")
	// ErrInvalidExamples: a recommendation without a positive example, with too many examples, a
	// weight that is not a positive number, a vector of the wrong length, or examples that cancel out.
	ErrInvalidExamples = errors.New("intel: invalid recommendation examples")
)
