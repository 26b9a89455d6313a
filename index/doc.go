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
//
// Every Upsert/Delete commits to bbolt (fsync) before it returns, then
// updates the in-memory graph. The graph is snapshotted with a CRC and the
// sequence number it reflects, periodically and on Close; at Open a snapshot
// whose checksum or sequence number does not match is ignored and the graph
// is rebuilt from the stored vectors, so kill -9 never loses an acknowledged
// write (it only costs a rebuild).
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
//   - After a crash the graph is rebuilt at Open, which takes about as long
//     as inserting every item again (minutes for 100k x 1280-d).
//   - Deletes repair the graph by scanning for in-links: O(n) per deleted
//     item, fine for catalogue churn, not for bulk deletes of most items
//     (drop and recreate the collection instead).
//   - github.com/coder/hnsw is imported only by bench_baseline.go, as the
//     baseline the benchmark compares against; the index never uses it.
package index
