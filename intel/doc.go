// Package intel is Lookalike's catalog intelligence: duplicate tiers (exact, near, similar) and
// disjoint duplicate clusters, colour-aware pixel signatures and their content-addressed cache,
// result diversification, tag suggestions by neighbour vote and bulk tagging, and "why it matched"
// heatmaps. It works on index collections and embed outputs and returns ids, domain types and the
// sentinel errors of errors.go: it builds no URLs and knows no HTTP status (package api does both).
// cmd/lookalike runs the same code offline (lookalike tag, lookalike dupes).
//
// docs/intelligence.md has the measurements behind every threshold.
//
// # Caveats
//
//   - Clusters are disjoint by construction (an item joins only the cluster of its smallest-id
//     neighbour in the tier, and only when that neighbour seeds one), so an item whose smallest
//     neighbour is itself claimed by a smaller one is in no cluster until the review resolves it.
//   - Every write (bulk tagging) goes through index.Collection.Update: read, decide and write
//     under the collection's write lock, and metadata edited as raw JSON so that untouched fields
//     keep their exact bytes.
//   - Pixel signatures are decoded from stored thumbnails (JPEG); an item without a thumbnail is
//     never a near-duplicate of anything.
package intel
