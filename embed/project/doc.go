// Package project learns and applies a per-region PCA or PCA-whitening of R-MAC regional vectors
// (Tolias et al. 2016; Radenović et al. 2018): each region's L2-normalised vector is centred,
// rotated onto the principal axes of the collection's regions, (for a whitening) scaled by a power
// of the inverse of each axis' variance, cut to the leading Dims axes and L2-normalised again,
// before the regions are summed. Plain PCA ("pca512") has no parameter besides the dimension.
// It is learned without labels, from the photos of the collection itself.
//
// # Caveats
//
// A Projection is immutable once learned; Region and Pool are safe for concurrent use. Its Hash names it in
// fingerprints: two projections with the same Hash project alike, a change of projection is a new
// fingerprint.
package project
