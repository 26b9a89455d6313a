// Package rerank re-ranks nearest-neighbour results: average query expansion (the query averaged
// with its top results and searched again) and k-reciprocal re-ranking (Zhong, Zheng, Cao & Li,
// "Re-ranking Person Re-identification with k-reciprocal Encoding", CVPR 2017).
//
// # Model
//
// Items are dense slots (uint32), as in the index. State holds, per item, its K1 nearest
// neighbours (the neighbour list, ascending by distance), the reverse lists (who holds whom), the
// sparse row V0 (the item's k-reciprocal set expanded as in the paper, weighted by exp(-distance))
// and the postings: an inverted index over the rows V, the mean of V0 over the item and its K2-1
// nearest neighbours (local query expansion; V itself is merged when needed, not kept). The
// postings score a query against every item that shares support with it, so nothing is cut to a
// top-K shortlist before re-ranking:
//
//	jaccard(q, g) = 1 - m/(2-m),  m = sum_k min(V[q,k], V[g,k])
//	final(q, g)   = lambda*d(q, g) + (1-lambda)*jaccard(q, g)
//
// Items outside every posting list of the query's support have jaccard 1; the caller's plain
// nearest-neighbour results stand for them (Rank merges both), so the top K is that of all items.
//
// Maintenance is incremental. PlanAdd and PlanRemove compute the new lists of the affected items,
// find which reciprocal sets change, recompute only the V0 and V rows that depend on them and
// return a Patch (with each changed V row before and after); Apply installs it. Plan reads only, so a caller can plan under a read lock while
// searches run, and apply under a short write lock (the index's locking story).
//
// # Distances
//
// d is 1 - cosine of unit vectors, half their squared Euclidean distance. The authors' code divides
// each squared distance by the largest one in its row (in the weights exp(-d) and in the final
// lambda*d), which needs the distances to every item. With Params.RowScale 0, d is used as is: for
// unit vectors with non-negative components (CNN embeddings after ReLU) it lies in [0, 1], the
// squared distance over its bound 2. With RowScale n, each row is divided by its largest distance
// to a sample of up to n items, fixed per item when it is added (the query: when it is placed) and
// renewed by Rebuild.
//
// # Caveats
//
//   - State does no locking: Plan* and Rank read, Apply, SetList and Rebuild write; the caller
//     serialises writers and keeps readers out of Apply.
//   - An external query (not a stored item) is placed among the items as the paper places a
//     probe: ExternalQuery plans adding it (without applying) and Rank scores the rows that would
//     change with their new values, so a query costs about what planning an insertion does.
//     Other queries are not among the items (the paper's probe set ranks all probes together).
//   - The lists are exact only when the neighbours handed to PlanAdd, PlanRemove and SetList are;
//     from an approximate index they are as good as its recall.
package rerank
