// Package eval measures retrieval quality offline: it embeds a labelled dataset with an embedding
// engine, loads it into a temporary HNSW collection, runs every query through HNSW and through exact
// search, and scores the rankings — the N-S score of UKBench, the Oxford Buildings mAP protocol,
// precision/recall/mAP@k, k-NN label accuracy — next to embedding and search throughput.
//
// It owns the metric functions (hand-checkable on a ranking of Relevance values), the dataset
// readers (UKBench, Oxford5k, Fashion-MNIST idx files, a folder of groups or a manifest) and Run,
// which compares several Configs (efSearch, query expansion, pooling, preprocessing) in one pass,
// sharing embeddings and indexes where they can.
//
// # Caveats
//
//   - Rankings are at most index.MaxK-1 (999) deep: AP counts positives beyond the depth as missed,
//     which on the Oxford subset (1 684 photos) can lower AP by a hair.
//   - The temporary index disables the small-collection exact shortcut so that HNSW is measured; a
//     deep ranking widens the HNSW beam to the depth, so ANN loss shows in Report.ANNRecall (plain
//     top-10 searches), not in the deep metrics.
//   - UKBench counts the query itself among its group (the benchmark's convention); folder and
//     manifest datasets exclude it.
//   - Run never closes the engines Options.Engine returns; the caller owns them.
package eval
