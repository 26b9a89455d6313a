// Package project learns and applies a per-region PCA-whitening of R-MAC regional vectors
// (Tolias et al. 2016; Radenović et al. 2018): each region's L2-normalised vector is centred,
// rotated onto the principal axes of the collection's regions, scaled by the inverse square root of
// each axis' variance, cut to the leading Dims axes and L2-normalised again, before the regions are
// summed. It is learned without labels, from the photos of the collection itself.
//
// # Caveats
//
// A Projection is immutable once learned; Apply is safe for concurrent use. Its Hash names it in
// fingerprints: two projections with the same Hash project alike, a change of projection is a new
// fingerprint.
package project
