// Package quality measures retrieval quality live, while the server answers searches
// (docs/quality.md):
//
//   - ANN recall: a sampled share (quality.recall_sample_rate) of answered searches is re-run with
//     exact search in the background; recall@k of the HNSW answer is a gauge and a histogram.
//   - Feedback: judgements and clicks reported by the storefront; precision@k and click-through rate
//     over a sliding window (quality.feedback_window).
//   - Probes: held-out photos with a known group are searched periodically and after index changes;
//     precision@k per probe set.
//   - Drift: top-1 scores, the share below quality.min_score and the cosine distance between the
//     centroid of recent queries and the catalog's, over the same window.
//
// A Monitor owns this state. It knows nothing of HTTP: it returns domain types (FeedbackSummary,
// Summary) and sentinel errors (errors.go), and exports its figures as Prometheus metrics on the
// registerer its caller passes to New. Overlap is the recall@k formula shared with the offline
// evaluation (package eval).
//
// # Caveats
//
//   - Observe is on the search request path: it copies the query and does a non-blocking send; when
//     the queues are full, observations are dropped and counted, never waited for.
//   - The background loops (Start) run under internal/guard: a panic is logged and the loop restarts.
//     They stop when the caller's context is done; the caller waits on its WaitGroup.
//   - Windows live in memory only: a restart starts them empty.
//   - Writes between a sampled search and its exact re-run can move the exact answer; at sampling
//     rates of 1% that noise is negligible next to real recall loss.
package quality
