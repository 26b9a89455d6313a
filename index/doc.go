// Package index is Lookalike's vector store: named collections of product
// items (id, unit vector, JSON metadata, thumbnail) searched by cosine
// similarity through an HNSW graph (Malkov & Yashunin 2018) and persisted in
// one bbolt file, the single source of truth.
//
// # Model
//
// A DB is a data directory with one bbolt file (FileName); each collection is
// a bucket holding its config (model fingerprint, dims, HNSW parameters), its
// items keyed by external id, thumbnails, a write sequence number, and a
// snapshot of its graph. Items map to dense internal slots (freed slots are
// reused); vectors live in one contiguous slab and similarity is a SIMD dot
// product on normalised vectors. From SQ8TrainAt items on (Options.Compression,
// default CompressionSQ8) the slab holds one byte per dimension (scalar
// quantisation with per-dimension ranges learned from the collection and
// stored in its bucket), compared with int16 multiply-adds (AVX2 assembly,
// with a pure-Go fallback); the float vectors stay in bbolt, where a search
// re-scores its best candidates, so scores are exact (compress.go, sq8.go).
// Trash moves items into a per-collection trash bucket instead of deleting
// them, so a deletion can be undone (RestoreFromTrash) until PurgeTrash.
//
// Every Upsert/Delete commits to bbolt (fsync) before it returns, then
// updates the in-memory graph; the same transaction bumps the collection's
// write sequence number and logs which slots it touched. The graph is
// snapshotted with a CRC and the sequence number it reflects, periodically
// and on Close (which trims the log). At Open a snapshot is used when its
// checksum holds and the log covers every write since it: the touched slots
// are unlinked and re-inserted ("snapshot+replay"); otherwise (missing,
// corrupt, or stale without a log) the graph is rebuilt from the stored
// vectors. kill -9 never loses an acknowledged write.
//
// Search picks a strategy: brute force below Options.ExactThreshold items or
// on request; under a filter, brute force over the matching set when an
// estimate (keyword postings, else sampling) says it is small, otherwise HNSW
// with a beam widened by 1/selectivity; plain HNSW otherwise.
//
// SearchOptions.Rerank re-ranks the answer (package rerank): average query
// expansion over the top 2, k-reciprocal re-ranking, or both. For the latter
// each collection keeps every item's 20 nearest neighbours (rerank.State),
// derived from the vectors like the graph: an added item's come from its
// insertion beam and it enters the lists of the items it is closer to than
// their 20th; the items that listed a deleted or replaced item search again.
// The lists are snapshotted beside the graph (key "knn", same transaction)
// and replayed with it; the k-reciprocal rows and their postings are
// recomputed from the lists at Open.
//
// # Concurrency
//
// Collections are safe for concurrent use. Per collection, one mutex
// serialises writers and one RWMutex guards memory: searches share it, a
// writer computes its graph change under the read lock and applies it under
// a short write lock (see Collection).
//
// # Caveats
//
//   - Vectors are normalised on the way in: Get returns the unit vector.
//   - A compressed collection's Vector and Similar read the float vector from
//     bbolt (one lookup), and its searches read the re-scored candidates'
//     vectors there: a bbolt remap (file growth) briefly holds them up.
//   - SQ8 ranges are learned once, from the first SQ8TrainAt items; later
//     components outside them are clamped (only the traversal blurs; scores
//     stay exact). Memory per item and start-up at scale: docs/scale.md.
//   - A collection's fingerprint and dims are fixed at creation; opening it
//     with others is ErrFingerprintMismatch.
//   - A full rebuild (snapshot missing or corrupt) takes about as long as
//     inserting every item again: minutes for 100k x 1280-d. Replaying the
//     writes since the last snapshot costs one insert per written item.
//   - Deletes repair the graph by scanning for in-links: O(n) per deleted
//     item, fine for catalogue churn, not for bulk deletes of most items
//     (drop and recreate the collection instead).
//   - The re-ranking state costs about 1.3 kB per item in memory, a write
//     about 10 % more CPU (a delete: one 20-nearest search per item that
//     listed it), and Open the rows' recomputation (seconds at 100k); when
//     its snapshot is missing or corrupt, one search per item (minutes at
//     100k). docs/quality.md has the measurements.
//   - Graph is the HNSW core alone (in memory, no locking), exported for the
//     benchmarks in internal/bench, which also hold the github.com/coder/hnsw
//     baseline; the index never imports it.
package index
