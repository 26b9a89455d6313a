package index

import (
	"time"

	"github.com/lookalike/lookalike/rerank"
)

// Defaults for zero-valued options. internal/config's defaults are these constants too.
const (
	DefaultM              = 16
	DefaultEfConstruction = 200
	// DefaultEfSearch: on 20 000 real embeddings (the default model on
	// Fashion-MNIST, 300 queries, M 16, efConstruction 200; LOOKALIKE_REAL_RECALL=1
	// go test ./eval -run RealEmbedding) recall@10 was 0.953 at ef 16, 0.992
	// at 32, 0.998 at 48, 0.9997 at 64, 0.9997 at 96 and 1.000 at 128, and
	// 1.000 from ef 16 under a 1 % filter; on 100k clustered synthetic
	// 1280-d vectors 0.9998 at 64. 64 gives 96's recall for fewer distance
	// evaluations per search, with headroom above 0.98 for harder data.
	DefaultEfSearch       = 64
	DefaultExactThreshold = 2000
	// DefaultSnapshotInterval: how often a changed graph is snapshotted. A snapshot bounds the
	// replay after a crash to the writes since it.
	DefaultSnapshotInterval = 5 * time.Minute
)

// Default re-ranking of searches that name none (the API's index.rerank_search and
// index.rerank_similar). On the default profile's numbers (docs/quality.md, Re-ranking) query
// expansion and k-reciprocal re-ranking together raise Oxford mAP from 0.588 to 0.793 and keep
// UKBench + distractors within the noise, but lower Fashion-MNIST k-NN accuracy from 0.881 to
// 0.864, below the project's 0.88 floor (qe alone 0.866, kr alone 0.878), so every mode is
// opt-in per request or per server; for items similar to an item no mode pays on UKBench, and
// the plain search is the fast path.
const (
	DefaultRerankSearch  = rerank.ModeNone
	DefaultRerankSimilar = rerank.ModeNone
)
