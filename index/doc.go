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
// reused); vectors live in one contiguous []float32 slab and similarity is a
// SIMD dot product (github.com/viterin/vek) on normalised vectors.
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
//   - A collection's fingerprint and dims are fixed at creation; opening it
//     with others is ErrFingerprintMismatch.
//   - A full rebuild (snapshot missing or corrupt) takes about as long as
//     inserting every item again: minutes for 100k x 1280-d. Replaying the
//     writes since the last snapshot costs one insert per written item.
//   - Deletes repair the graph by scanning for in-links: O(n) per deleted
//     item, fine for catalogue churn, not for bulk deletes of most items
//     (drop and recreate the collection instead).
//   - Graph is the HNSW core alone (in memory, no locking), exported for the
//     benchmarks in internal/bench, which also hold the github.com/coder/hnsw
//     baseline; the index never imports it.
package index
