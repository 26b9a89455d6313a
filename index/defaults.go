package index

// Defaults for zero-valued options.
const (
	DefaultM              = 16
	DefaultEfConstruction = 200
	// DefaultEfSearch is the smallest beam that gave recall@10 >= 0.98 on
	// 20k clustered 1280-d unit vectors (TestGraphRecall), with headroom.
	DefaultEfSearch       = 64
	DefaultExactThreshold = 2000
)
