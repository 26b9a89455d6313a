package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Status is what a node knows of the cluster: the log's state and its own replicas. It is the
// material of the future GET /v1/cluster.
type Status struct {
	Node string
	// Log is the stream's state as its leader reports it.
	Log      LogStatus
	Replicas []ReplicaStatus
}

// LogStatus describes the stream LK_MUT.
type LogStatus struct {
	// Leader is empty while the stream has none (an election; or this server just restarted and
	// has not heard from it yet: the other fields are then its own, possibly stale, copy).
	Leader   string
	FirstSeq uint64
	LastSeq  uint64
	Messages uint64
	Bytes    uint64
	// Peers are the stream's other servers: whether each is current, and how far behind.
	Peers []PeerStatus
}

// PeerStatus is one follower of the stream.
type PeerStatus struct {
	Name    string
	Current bool
	Offline bool
	Lag     uint64
	Active  time.Duration // since it was last heard from
}

// ReplicaStatus is one of this node's shard replicas.
type ReplicaStatus struct {
	Collection string
	Shard      int
	Applied    uint64 // stream sequence of the last message applied
	Pending    uint64 // messages of the shard still to apply, as its consumer last reported
	Serving    bool   // answers searches (caught up once, not truncated or closing)
	Err        string // why it is not following the log, when it is not
}

// Status returns the node's view of the log and its replicas, in collection and shard order.
func (n *Node) Status(ctx context.Context) (Status, error) {
	out := Status{Node: n.o.NodeName}
	n.mu.Lock()
	for _, r := range n.replicas {
		out.Replicas = append(out.Replicas, r.Status())
	}
	n.mu.Unlock()
	slices.SortFunc(out.Replicas, func(a, b ReplicaStatus) int {
		if c := strings.Compare(a.Collection, b.Collection); c != 0 {
			return c
		}
		return a.Shard - b.Shard
	})
	st, err := n.js.Stream(ctx, StreamName)
	if err != nil {
		return out, fmt.Errorf("%w: stream info: %v", ErrUnavailable, err)
	}
	info := st.CachedInfo()
	out.Log = LogStatus{FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, Messages: info.State.Msgs, Bytes: info.State.Bytes}
	if c := info.Cluster; c != nil {
		out.Log.Leader = c.Leader
		for _, p := range c.Replicas {
			out.Log.Peers = append(out.Log.Peers, PeerStatus{Name: p.Name, Current: p.Current, Offline: p.Offline, Lag: p.Lag, Active: p.Active})
		}
	} else {
		out.Log.Leader = n.o.NodeName
	}
	return out, nil
}

// Status is the replica's state.
func (r *Replica) Status() ReplicaStatus {
	s := ReplicaStatus{Collection: r.collection, Shard: r.shard, Applied: r.Applied(), Pending: r.Pending()}
	s.Serving = r.serving()
	if err := r.Err(); err != nil {
		s.Err = err.Error()
	}
	return s
}
