package cluster

// Placement (docs/cluster.md, "Placement"): which node holds replicas of which shard.
//
// Every node that serves a collection puts a heartbeat into the KV bucket LK_NODES every
// Grace/5; the bucket's TTL is Grace, so the key of a node that stopped or died disappears Grace
// after its last heartbeat (the grace period: a node that restarts within it moves nothing). The
// live node with the lowest name computes the assignment of every served collection with Assign
// over the live nodes (rf = min(ReplicationFactor, live nodes)) and stores it in the KV bucket
// LK_ASSIGN under the collection's name, with a compare-and-set on the key's revision; every node
// reads it every PlaceEvery and opens the replicas assigned to it (a new replica catches up from
// the log and joins its shard's query groups only once caught up). A replica no longer assigned
// here is closed only once every node the shard is assigned to reports (in its heartbeat) that it
// serves the shard, and after Linger: a node that comes and goes does not make the others drop
// and rebuild replicas each time.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lookalike/lookalike/index"
)

// KV buckets of the placement.
const (
	NodesBucket  = "LK_NODES"
	AssignBucket = "LK_ASSIGN"
)

// Placement defaults.
const (
	DefaultReplicationFactor = 2
	DefaultGrace             = 10 * time.Second
	DefaultLinger            = 2 * time.Minute
	DefaultPlaceEvery        = time.Second
)

// Heartbeat is a node's entry in LK_NODES: it is alive, and which shards it serves (caught up,
// answering queries), by collection.
type Heartbeat struct {
	Node    string           `json:"node"`
	Serving map[string][]int `json:"serving"`
	At      time.Time        `json:"at"`
}

// Assignment is the placement of one collection's shards, stored in LK_ASSIGN.
type Assignment struct {
	Collection string `json:"collection"`
	// Nodes are the live nodes it was computed from, RF the replication factor applied.
	Nodes []string `json:"nodes"`
	RF    int      `json:"replication_factor"`
	// Shards[s] are the nodes holding shard s, in preference order.
	Shards   [][]string `json:"shards"`
	Computed time.Time  `json:"computed"`
	By       string     `json:"by"`
}

// served is a collection this node serves: its config, and since when each unassigned replica
// has been unassigned (for Linger).
type served struct {
	cfg        index.CollectionConfig
	dbOpts     *index.Options
	unassigned map[int]time.Time
}

// Serve makes this node take part in the placement of collection: it announces itself, and opens
// and closes its replicas of the collection's shards to match the assignment in LK_ASSIGN. cfg is
// the collection's config; dbOpts the replicas' index options (nil: defaults).
func (n *Node) Serve(collection string, cfg index.CollectionConfig, dbOpts *index.Options) error {
	if err := validCollection(collection); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if _, ok := n.served[collection]; ok {
		return fmt.Errorf("%w: collection %q is already served", ErrConfig, collection)
	}
	n.served[collection] = &served{cfg: cfg, dbOpts: dbOpts, unassigned: map[int]time.Time{}}
	if n.placeDone == nil {
		ctx, cancel := context.WithCancel(context.Background())
		n.placeCancel, n.placeDone = cancel, make(chan struct{})
		go n.place(ctx)
	}
	return nil
}

// Replica is this node's open replica of shard of collection, or nil.
func (n *Node) Replica(collection string, shard int) *Replica {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.replicas[collection+"/"+strconv.Itoa(shard)]
}

// CurrentAssignment is the assignment of collection this node last read (nil before the first).
func (n *Node) CurrentAssignment(collection string) *Assignment {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.assign[collection]
}

// LiveNodes are the heartbeats this node last read from LK_NODES, by node name.
func (n *Node) LiveNodes() map[string]Heartbeat {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]Heartbeat, len(n.live))
	for k, v := range n.live {
		out[k] = v
	}
	return out
}

// WaitServed waits until collection has an assignment and every one of its shards is served by
// some live node (as the heartbeats say): the cluster can answer for the whole collection.
func (n *Node) WaitServed(ctx context.Context, collection string) error {
	for {
		n.mu.Lock()
		ok := n.assign[collection] != nil
		for s := 0; ok && s < n.o.Shards; s++ {
			served := false
			for _, hb := range n.live {
				served = served || slices.Contains(hb.Serving[collection], s)
			}
			ok = served
		}
		n.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: not every shard of %q is served yet: %v", ErrUnavailable, collection, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// place runs the placement loop until ctx ends (Node.Close).
func (n *Node) place(ctx context.Context) {
	defer close(n.placeDone)
	var nodes, assign jetstream.KeyValue
	lastBeat := time.Time{}
	tick := time.NewTicker(n.o.PlaceEvery)
	defer tick.Stop()
	for {
		if nodes == nil || assign == nil {
			var err error
			if nodes, assign, err = n.buckets(ctx); err != nil {
				n.log.Warn("placement: KV buckets", "err", err)
			}
		}
		if nodes != nil && assign != nil {
			if time.Since(lastBeat) >= n.o.Grace/5 {
				if err := n.heartbeat(ctx, nodes); err != nil {
					n.log.Warn("placement: heartbeat", "err", err)
				} else {
					lastBeat = time.Now()
				}
			}
			if err := n.placeOnce(ctx, nodes, assign); err != nil && ctx.Err() == nil {
				n.log.Warn("placement", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// buckets creates (or opens) the placement's KV buckets, replicated like the log.
func (n *Node) buckets(ctx context.Context) (jetstream.KeyValue, jetstream.KeyValue, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nodes, err := n.js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{Bucket: NodesBucket,
		Description: "Lookalike live nodes (docs/cluster.md)", TTL: n.o.Grace, History: 1, Replicas: n.logReplicas(), Storage: jetstream.FileStorage})
	if err != nil {
		return nil, nil, fmt.Errorf("bucket %s: %w", NodesBucket, err)
	}
	assign, err := n.js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{Bucket: AssignBucket,
		Description: "Lookalike shard assignment (docs/cluster.md)", History: 1, Replicas: n.logReplicas(), Storage: jetstream.FileStorage})
	if err != nil {
		return nil, nil, fmt.Errorf("bucket %s: %w", AssignBucket, err)
	}
	return nodes, assign, nil
}

// heartbeat puts this node's entry, with the shards it serves.
func (n *Node) heartbeat(ctx context.Context, kv jetstream.KeyValue) error {
	hb := Heartbeat{Node: n.o.NodeName, Serving: map[string][]int{}, At: time.Now().UTC()}
	n.mu.Lock()
	for _, r := range n.replicas {
		if r.serving() {
			hb.Serving[r.collection] = append(hb.Serving[r.collection], r.shard)
		}
	}
	n.mu.Unlock()
	for _, s := range hb.Serving {
		slices.Sort(s)
	}
	data, err := json.Marshal(hb)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = kv.Put(pctx, n.o.NodeName, data)
	return err
}

// readLive reads every live node's heartbeat.
func readLive(ctx context.Context, kv jetstream.KeyValue) (map[string]Heartbeat, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	live := map[string]Heartbeat{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e := <-w.Updates():
			if e == nil { // the initial values are all delivered
				return live, nil
			}
			var hb Heartbeat
			if json.Unmarshal(e.Value(), &hb) == nil {
				live[e.Key()] = hb
			}
		}
	}
}

// placeOnce reads the live nodes and the assignments, rewrites the assignments when this node
// leads the placement and they are out of date, and opens and closes replicas to match.
func (n *Node) placeOnce(ctx context.Context, nodesKV, assignKV jetstream.KeyValue) error {
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	live, err := readLive(rctx, nodesKV)
	if err != nil {
		return fmt.Errorf("reading %s: %w", NodesBucket, err)
	}
	names := make([]string, 0, len(live))
	for name := range live {
		names = append(names, name)
	}
	sort.Strings(names)
	n.mu.Lock()
	n.live = live
	cols := make([]string, 0, len(n.served))
	for c := range n.served {
		cols = append(cols, c)
	}
	n.mu.Unlock()
	var errs []error
	for _, col := range cols {
		a, rev, err := readAssignment(rctx, assignKV, col)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(names) > 0 && names[0] == n.o.NodeName {
			if want := n.compute(col, names); a == nil || !sameAssignment(*a, want) {
				if err := n.storeAssignment(rctx, assignKV, want, rev); err != nil {
					errs = append(errs, err)
				} else {
					n.log.Info("placement: new assignment", "collection", col, "nodes", names, "rf", want.RF)
					a = &want
				}
			}
		}
		if a == nil {
			continue // no assignment yet: the placement leader writes one shortly
		}
		n.mu.Lock()
		n.assign[col] = a
		n.mu.Unlock()
		errs = append(errs, n.reconcile(col, *a, live))
	}
	return errors.Join(errs...)
}

func (n *Node) compute(col string, names []string) Assignment {
	rf := min(n.o.ReplicationFactor, len(names))
	return Assignment{Collection: col, Nodes: names, RF: rf, Shards: Assign(names, n.o.Shards, rf), Computed: time.Now().UTC(), By: n.o.NodeName}
}

func sameAssignment(a, b Assignment) bool {
	return a.RF == b.RF && slices.Equal(a.Nodes, b.Nodes) && slices.EqualFunc(a.Shards, b.Shards, slices.Equal)
}

func readAssignment(ctx context.Context, kv jetstream.KeyValue, col string) (*Assignment, uint64, error) {
	e, err := kv.Get(ctx, col)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading the assignment of %q: %w", col, err)
	}
	var a Assignment
	if err := json.Unmarshal(e.Value(), &a); err != nil {
		return nil, e.Revision(), fmt.Errorf("assignment of %q: %w", col, err)
	}
	return &a, e.Revision(), nil
}

// storeAssignment writes a with a compare-and-set on the revision read (0: the key must be new),
// so two nodes that both believe they lead the placement do not overwrite each other blindly.
func (n *Node) storeAssignment(ctx context.Context, kv jetstream.KeyValue, a Assignment, rev uint64) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = kv.Create(ctx, a.Collection, data)
	} else {
		_, err = kv.Update(ctx, a.Collection, data, rev)
	}
	if err != nil {
		return fmt.Errorf("storing the assignment of %q: %w", a.Collection, err)
	}
	return nil
}

// reconcile opens this node's assigned replicas of col and closes the unassigned ones whose
// shard is served by all its assigned nodes (after Linger).
func (n *Node) reconcile(col string, a Assignment, live map[string]Heartbeat) error {
	n.mu.Lock()
	sv := n.served[col]
	n.mu.Unlock()
	var errs []error
	for s := 0; s < n.o.Shards && s < len(a.Shards); s++ {
		mine := slices.Contains(a.Shards[s], n.o.NodeName)
		r := n.Replica(col, s)
		switch {
		case mine && r == nil:
			if _, err := n.OpenReplica(col, s, sv.cfg, sv.dbOpts); err != nil {
				errs = append(errs, err)
			} else {
				n.log.Info("placement: replica opened", "collection", col, "shard", s)
			}
			delete(sv.unassigned, s)
		case mine:
			delete(sv.unassigned, s)
		case r != nil:
			since, ok := sv.unassigned[s]
			if !ok {
				sv.unassigned[s] = time.Now()
				continue
			}
			if time.Since(since) < n.o.Linger || !servedByAll(col, s, a.Shards[s], live) {
				continue
			}
			if err := r.close(); err != nil {
				errs = append(errs, err)
			}
			delete(sv.unassigned, s)
			n.log.Info("placement: replica closed (served elsewhere)", "collection", col, "shard", s, "by", a.Shards[s])
		}
	}
	return errors.Join(errs...)
}

// servedByAll: every one of holders is live and reports it serves shard s of col.
func servedByAll(col string, s int, holders []string, live map[string]Heartbeat) bool {
	if len(holders) == 0 {
		return false
	}
	for _, h := range holders {
		hb, ok := live[h]
		if !ok || !slices.Contains(hb.Serving[col], s) {
			return false
		}
	}
	return true
}

// stopPlacement stops the placement loop (Close, before the replicas close).
func (n *Node) stopPlacement() {
	n.mu.Lock()
	cancel, done := n.placeCancel, n.placeDone
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}
