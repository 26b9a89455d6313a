package cluster

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
)

// Names of the log.
const (
	// StreamName is the JetStream stream holding every collection's mutations.
	StreamName = "LK_MUT"
	// subjectPrefix starts every mutation subject: lk.mut.<collection>.<shard>.
	subjectPrefix = "lk.mut"
)

// ShardOf is the shard of item id in a collection of shards shards: FNV-1a of the id, so every
// node and every client computes the same one.
func ShardOf(id string, shards int) int {
	h := fnv.New64a()
	h.Write([]byte(id))
	return int(h.Sum64() % uint64(shards))
}

// Subject is the log subject of one shard of a collection.
func Subject(collection string, shard int) string {
	return fmt.Sprintf("%s.%s.%d", subjectPrefix, collection, shard)
}

// validCollection: a collection name is one subject token (index names are already narrower;
// this guards the subject itself).
func validCollection(name string) error {
	if name == "" || strings.ContainsAny(name, ".*> \t\r\n") {
		return fmt.Errorf("%w: collection %q cannot be a subject token", ErrConfig, name)
	}
	return nil
}

// mix64 is MurmurHash3's 64-bit finalizer. FNV-1a alone ranks nodes almost the same way for
// every shard (the shard's last bytes change only low bits of the hash, which the comparison
// barely sees: with 3 nodes and 4 shards one node got no shard at all), so the scores are mixed.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Assign places rf replicas of each of shards shards on nodes by rendezvous hashing: each shard
// goes to the rf nodes with the highest hash of (node, shard), so adding or removing a node moves
// only the shards it gains or held. It returns, per shard, the node names in preference order.
// The placement (placement.go) stores its result in the KV bucket LK_ASSIGN.
func Assign(nodes []string, shards, rf int) [][]string {
	rf = min(rf, len(nodes))
	out := make([][]string, shards)
	for s := range out {
		ranked := slices.Clone(nodes)
		score := func(n string) uint64 {
			h := fnv.New64a()
			fmt.Fprintf(h, "%s\x00%d", n, s)
			return mix64(h.Sum64())
		}
		slices.SortFunc(ranked, func(a, b string) int {
			sa, sb := score(a), score(b)
			switch {
			case sa > sb:
				return -1
			case sa < sb:
				return 1
			}
			return strings.Compare(a, b)
		})
		out[s] = ranked[:rf]
	}
	return out
}
