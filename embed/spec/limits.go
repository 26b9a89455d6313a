package spec

// Defaults of the input limits. internal/config's defaults, embed's zero-value Options and ingest's
// zero-value Options all use these, so the three can never disagree.
const (
	// DefaultMaxPixels is the decompression-bomb limit: an image whose header announces more pixels
	// is refused before any pixel is decoded. 50 MP covers every camera photo on sale (a 48 MP phone
	// sensor, a 45 MP full-frame body).
	DefaultMaxPixels int64 = 50_000_000
	// DefaultMaxAspectRatio refuses images whose longer side is more than this many times the
	// shorter one. Ordinary wide formats pass (a phone panorama is 4-6:1, a 728×90 web banner 8:1,
	// a scrolling phone screenshot 10-20:1); beyond 32:1 the model's centre crop sees under 3 % of the
	// picture, so the embedding would describe a sliver, not the product. Memory does not depend on
	// it: the resampler's buffers are bounded for any aspect ratio (embed/preprocess.go).
	DefaultMaxAspectRatio = 32
	// DefaultThumbnailSize is the longer side of stored thumbnails, in pixels (the exact and
	// near-duplicate tiers compare pixels at this size).
	DefaultThumbnailSize = 256
	// DefaultThumbnailQuality is the JPEG quality of stored thumbnails.
	DefaultThumbnailQuality = 82
	// DefaultSourceSize is the longer side of the source rendition stored with each item, so that
	// a catalog can be embedded again under another profile or model without its uploads: at
	// least the largest scale of the built-in profiles (448), with room for one more.
	DefaultSourceSize = 512
	// DefaultSourceQuality is the JPEG quality of source renditions: high enough that embedding
	// one gives the vector of the original (docs/quality.md).
	DefaultSourceQuality = 90
	// MinSourceSize is the least source size accepted: the largest built-in profile scale.
	MinSourceSize = 448
)
