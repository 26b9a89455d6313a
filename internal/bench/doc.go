// Package bench holds what measures Lookalike and is not part of it: the embedding benchmark
// (`lookalike bench embed`: model-only vs end-to-end throughput, and a Go standard-library
// pipeline as the baseline), the search benchmark (`lookalike bench search`: recall and QPS of the
// HNSW core against exact search and github.com/coder/hnsw), TEXMEX .fvecs files for runs against
// other implementations, and (in synth) synthetic embedding-like vectors.
//
// The libraries expose only what a benchmark needs and production could use too
// (embed.Engine.EmbedTensors, index.Graph); nothing here is imported by them.
package bench
