package index

import "time"

// Defaults for zero-valued options. internal/config's defaults are these constants too.
const (
	DefaultM              = 16
	DefaultEfConstruction = 200
	// DefaultEfSearch: on 100k clustered 1280-d unit vectors (M 16,
	// efConstruction 200) recall@10 was 0.953 at ef 20, 0.993 at ef 40 and
	// 0.9998 at ef 64; 64 keeps >= 0.98 with headroom for harder data.
	DefaultEfSearch       = 64
	DefaultExactThreshold = 2000
	// DefaultSnapshotInterval: how often a changed graph is snapshotted. A snapshot bounds the
	// replay after a crash to the writes since it.
	DefaultSnapshotInterval = 5 * time.Minute
)
