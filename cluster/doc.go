// Package cluster runs Lookalike on several nodes with NATS JetStream as the replicated mutation
// log (docs/cluster.md). It owns the embedded NATS server (or the connection to an external NATS
// cluster), the stream LK_MUT, the encoding of its messages, and the shard replicas that apply
// them to local index collections.
//
// # Model
//
// Every change to an item (upsert, metadata edit, delete) is a Mutation published to the subject
// lk.mut.<collection>.<shard>, the shard being the item id's hash modulo the collection's shard
// count, so every item has one total order. A write is acknowledged when the stream's PubAck
// arrives: the message is then stored on a quorum of the stream's replicas (min(3, nodes)).
// Publish retries with the same Nats-Msg-Id, so a retried write lands once.
//
// A Replica holds one shard of one collection in its own index.DB (bbolt + HNSW) and applies the
// shard's subject in stream order through the index's one write path (Collection.PutApplied,
// DeleteApplied, UpdateApplied), which commits the applied stream sequence in the same bbolt
// transaction as the change. After a crash or a stop it resumes at applied+1: nothing is applied
// twice and nothing is skipped.
//
// # Caveats
//
//   - The position lives in bbolt, not in the server: the consumer is an ephemeral one (memory,
//     one replica, no acks) created from applied+1. The replica checks that the consumer's own
//     sequence has no gap and starts a new one from its applied position after a gap, missed
//     heartbeats, or when the consumer is gone with its server. A durable server-side consumer
//     would be a second cursor that could disagree with the data.
//   - Each message is applied in its own bbolt transaction (one fsync), so item versions (the
//     collection's write sequence) are identical on every replica of a shard, and an IfVersion
//     precondition decides the same way everywhere. That bounds a replica's apply rate by fsync.
//   - A precondition is checked when a replica applies the message, not when the write is
//     acknowledged: an acknowledged conditional write may turn out to be a no-op (the same one on
//     every replica).
//   - Node.Search scatters a search to one replica of every shard (a queue group per shard) and
//     merges the top k, reporting how many shards answered; replicas answer only once caught up.
//   - Node.Serve places a collection's replicas over the live nodes (placement.go): heartbeats in
//     the KV bucket LK_NODES (TTL = the grace period), the assignment (Assign, rf =
//     min(ReplicationFactor, live nodes)) in LK_ASSIGN, written by the lowest-named live node;
//     an unassigned replica closes only once its shard is served by all its assigned nodes and
//     Linger passed. Node.Item reads an item from a replica of its shard on any node.
//   - A read or search with a MinSeq waits (MinSeqWait) until the answering replicas applied
//     their shard up to it (Replica.WaitCaughtUp), else ErrNotCaughtUp.
//   - Not done yet: snapshots and catch-up from them.
package cluster
