package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookalike/lookalike/api"
	"github.com/lookalike/lookalike/cluster"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// clusterBackend is api.Cluster (serve.go wires it; only the serve command's files import api) on a cluster.Node.
// The node serves the default collection: it holds the replicas the placement assigns it
// (cluster.replication_factor of each shard over the live nodes, docs/cluster.md), reads an item
// from its own replica of the item's shard or else from another node's, and scatters searches
// over every shard's query group.
type clusterBackend struct {
	node    *cluster.Node
	served  map[string]bool // collections served in cluster mode
	timeout time.Duration   // of one search's scatter-gather
	errs    clusterAPIErrs
}

// clusterAPIErrs are api's sentinels the cluster's errors map onto (cmd wires; cluster does not
// know api).
type clusterAPIErrs struct {
	unavailable, notCaughtUp error
}

// clusterStartWait bounds how long serve waits for the cluster to form (a quorum of its nodes).
const clusterStartWait = 2 * time.Minute

// clusterServedWait bounds how long serve waits for every shard to be served before it reports ready.
const clusterServedWait = 30 * time.Second

// startCluster starts this node (its NATS server, or a connection to cluster.nats_url) under
// DATA/cluster and makes it serve col: the placement opens the replicas assigned to this node.
func startCluster(ctx context.Context, cfg config.Config, col *index.Collection, log *slog.Logger, errs clusterAPIErrs) (*clusterBackend, error) {
	c := cfg.Cluster
	linger := c.ReplicaLinger
	if linger == 0 {
		linger = -1 // cluster.Options: 0 is its default, negative is none
	}
	snapEvery := c.SnapshotInterval
	if snapEvery == 0 {
		snapEvery = -1 // likewise
	}
	sctx, cancel := context.WithTimeout(ctx, clusterStartWait)
	defer cancel()
	n, err := cluster.Start(sctx, cluster.Options{NodeName: c.NodeName, ClientAddr: c.ClientAddr, ClusterAddr: c.ClusterAddr, Advertise: c.Advertise,
		Routes: c.Routes, URL: c.NATSURL, Dir: filepath.Join(cfg.Data.Dir, "cluster"), Shards: c.Shards,
		Retention: c.Retention, ReplicationFactor: c.ReplicationFactor, Grace: c.Grace, Linger: linger, SnapshotInterval: snapEvery, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := n.Serve(col.Name(), col.Config(), nil); err != nil {
		n.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	// Ready once every shard is served somewhere (a fresh cluster: after the first placement; a
	// restarted node: at once). Not a condition to start: a cluster that lost every replica of a
	// shard must still come up and serve the rest.
	wctx, wcancel := context.WithTimeout(ctx, clusterServedWait)
	defer wcancel()
	if err := n.WaitServed(wctx, col.Name()); err != nil {
		log.Warn("cluster: serving before every shard is", "err", err)
	}
	return &clusterBackend{node: n, served: map[string]bool{col.Name(): true}, timeout: 2 * time.Second, errs: errs}, nil
}

func (b *clusterBackend) Close() error { return b.node.Close() }

func (b *clusterBackend) check(collection string) error {
	if !b.served[collection] {
		return fmt.Errorf("%w: collection %q is not served by the cluster", index.ErrNotFound, collection)
	}
	return nil
}

// mapErr maps the cluster's "no quorum / no replica answered" and "not caught up" onto the API's.
func (b *clusterBackend) mapErr(err error) error {
	switch {
	case errors.Is(err, cluster.ErrNotCaughtUp):
		return fmt.Errorf("%w: %s", b.errs.notCaughtUp, strings.TrimPrefix(err.Error(), cluster.ErrNotCaughtUp.Error()+": "))
	case errors.Is(err, cluster.ErrUnavailable):
		return fmt.Errorf("%w: %s", b.errs.unavailable, strings.TrimPrefix(err.Error(), cluster.ErrUnavailable.Error()+": "))
	}
	return err
}

// publish appends m and, so that the write is visible when the client hears of it, waits
// (briefly) until a replica of the item's shard applied it; the write is acknowledged either way.
func (b *clusterBackend) publish(ctx context.Context, collection string, m cluster.Mutation) (uint64, error) {
	if err := b.check(collection); err != nil {
		return 0, err
	}
	seq, err := b.node.Publish(ctx, collection, m)
	if err != nil {
		return 0, b.mapErr(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = b.node.WaitWrite(wctx, collection, m.ID, seq) // a slow replica delays nothing beyond this: the log has the write
	return seq, nil
}

func (b *clusterBackend) Upsert(ctx context.Context, collection string, it index.Item) (uint64, error) {
	return b.publish(ctx, collection, cluster.Mutation{Op: cluster.OpUpsert, ID: it.ID, IfVersion: it.IfVersion, UpdatedAt: it.UpdatedAt,
		Vector: it.Vector, Thumbnail: it.Thumbnail, Source: it.Source, ContentHash: it.ContentHash, Metadata: it.Metadata})
}

func (b *clusterBackend) Patch(ctx context.Context, collection, id string, patch json.RawMessage, ifVersion uint64) (uint64, error) {
	return b.publish(ctx, collection, cluster.Mutation{Op: cluster.OpMetaEdit, ID: id, IfVersion: ifVersion, Metadata: patch})
}

func (b *clusterBackend) Delete(ctx context.Context, collection, id string, ifVersion uint64) (uint64, error) {
	return b.publish(ctx, collection, cluster.Mutation{Op: cluster.OpDelete, ID: id, IfVersion: ifVersion})
}

func (b *clusterBackend) Get(ctx context.Context, collection, id string, o api.ClusterRead) (index.Item, error) {
	if err := b.check(collection); err != nil {
		return index.Item{}, err
	}
	it, err := b.node.Item(ctx, collection, id, cluster.ReadOptions{MinSeq: o.MinSeq, Thumbnail: o.Thumbnail, Source: o.Source})
	return it, b.mapErr(err)
}

func (b *clusterBackend) Search(ctx context.Context, collection string, q api.ClusterQuery) ([]index.Result, int, int, error) {
	if err := b.check(collection); err != nil {
		return nil, 0, 0, err
	}
	res, err := b.node.Search(ctx, collection, cluster.Query{Vector: q.Vector, K: q.K, Ef: q.Ef, Filter: q.Filter,
		ExcludeIDs: q.ExcludeIDs, Exact: q.Exact, MinSeq: q.MinSeq}, b.timeout)
	if err != nil {
		if errors.Is(err, cluster.ErrInvalidQuery) {
			return nil, 0, 0, fmt.Errorf("%w: %v", index.ErrInvalidFilter, err)
		}
		return nil, 0, 0, b.mapErr(err)
	}
	return res.Results, res.Shards, res.Of, nil
}

func (b *clusterBackend) List(ctx context.Context, collection string, q api.ClusterList) (api.ClusterPage, error) {
	if err := b.check(collection); err != nil {
		return api.ClusterPage{}, err
	}
	res, err := b.node.List(ctx, collection, cluster.ListQuery{Cursor: q.Cursor, Limit: q.Limit, Filter: q.Filter,
		WithVector: q.WithVector, Count: q.Count, MinSeq: q.MinSeq}, b.timeout)
	if err != nil {
		if errors.Is(err, cluster.ErrInvalidQuery) {
			return api.ClusterPage{}, fmt.Errorf("%w: %v", index.ErrInvalidFilter, err)
		}
		return api.ClusterPage{}, b.mapErr(err)
	}
	return api.ClusterPage{Items: res.Items, Next: res.Next, Count: res.Count, Shards: res.Shards, Of: res.Of}, nil
}

// clusterStatusJSON is GET /v1/cluster.
type clusterStatusJSON struct {
	Node   string        `json:"node"`
	Shards int           `json:"shards"`
	Log    logStatusJSON `json:"log"`
	// Nodes are the live nodes (heartbeats in LK_NODES) and the shards each serves; Assignment
	// the placement of each served collection (LK_ASSIGN), as this node last read them.
	Nodes      []nodeStatusJSON               `json:"nodes"`
	Assignment map[string]*cluster.Assignment `json:"assignment"`
	Replicas   []replicaStatusJSON            `json:"replicas"`
	Error      string                         `json:"error,omitempty"`
}

type nodeStatusJSON struct {
	Name     string           `json:"name"`
	Serving  map[string][]int `json:"serving"`
	LastSeen time.Time        `json:"last_heartbeat"`
}

type logStatusJSON struct {
	Leader   string           `json:"leader"`
	FirstSeq uint64           `json:"first_seq"`
	LastSeq  uint64           `json:"last_seq"`
	Messages uint64           `json:"messages"`
	Peers    []peerStatusJSON `json:"peers"`
}

type peerStatusJSON struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline"`
	Lag     uint64 `json:"lag"`
}

type replicaStatusJSON struct {
	Collection string `json:"collection"`
	Shard      int    `json:"shard"`
	Node       string `json:"node"`
	Applied    uint64 `json:"applied_seq"`
	// Pending is the replica's backlog: messages of its shard its consumer still had to deliver.
	Pending uint64 `json:"pending"`
	// Lag is the log's last sequence minus the applied one: an upper bound (the log holds every
	// shard's messages; a replica with nothing pending for its shard still shows the others').
	Lag     uint64 `json:"lag"`
	Serving bool   `json:"serving"`
	Err     string `json:"error,omitempty"`
}

func (b *clusterBackend) Status(ctx context.Context) (any, error) {
	st, err := b.node.Status(ctx)
	out := clusterStatusJSON{Node: st.Node, Shards: b.node.Shards(), Replicas: []replicaStatusJSON{},
		Log:   logStatusJSON{Leader: st.Log.Leader, FirstSeq: st.Log.FirstSeq, LastSeq: st.Log.LastSeq, Messages: st.Log.Messages, Peers: []peerStatusJSON{}},
		Nodes: []nodeStatusJSON{}, Assignment: map[string]*cluster.Assignment{}}
	for name, hb := range b.node.LiveNodes() {
		out.Nodes = append(out.Nodes, nodeStatusJSON{Name: name, Serving: hb.Serving, LastSeen: hb.At})
	}
	slices.SortFunc(out.Nodes, func(a, b nodeStatusJSON) int { return strings.Compare(a.Name, b.Name) })
	for col := range b.served {
		if a := b.node.CurrentAssignment(col); a != nil {
			out.Assignment[col] = a
		}
	}
	if err != nil {
		out.Error = err.Error() // the replicas are still worth showing
	}
	for _, p := range st.Log.Peers {
		out.Log.Peers = append(out.Log.Peers, peerStatusJSON{Name: p.Name, Current: p.Current, Offline: p.Offline, Lag: p.Lag})
	}
	for _, r := range st.Replicas {
		rj := replicaStatusJSON{Collection: r.Collection, Shard: r.Shard, Node: st.Node, Applied: r.Applied, Pending: r.Pending, Serving: r.Serving, Err: r.Err}
		if st.Log.LastSeq > r.Applied {
			rj.Lag = st.Log.LastSeq - r.Applied
		}
		out.Replicas = append(out.Replicas, rj)
	}
	return out, nil
}

// clusterCollector exports the node's replica positions on /metrics, read at scrape time.
type clusterCollector struct {
	b                                       *clusterBackend
	applied, lag, pending, lastSeq, liveNds *prometheus.Desc
}

func newClusterCollector(b *clusterBackend) *clusterCollector {
	return &clusterCollector{b: b,
		applied: prometheus.NewDesc("lookalike_cluster_replica_applied_seq", "Stream sequence of the last mutation this node's replica applied.", []string{"collection", "shard"}, nil),
		lag: prometheus.NewDesc("lookalike_cluster_replica_lag", "The log's last sequence minus the replica's applied one (an upper bound: the log holds every shard).",
			[]string{"collection", "shard"}, nil),
		pending: prometheus.NewDesc("lookalike_cluster_stream_pending", "Messages of the shard this node's replica still has to apply, as its consumer last reported.",
			[]string{"collection", "shard"}, nil),
		lastSeq: prometheus.NewDesc("lookalike_cluster_log_last_seq", "Last sequence of the mutation log as this node sees it.", nil, nil),
		liveNds: prometheus.NewDesc("lookalike_cluster_live_nodes", "Nodes with a live heartbeat in the placement bucket, as this node last read it.", nil, nil),
	}
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.applied
	ch <- c.lag
	ch <- c.pending
	ch <- c.lastSeq
	ch <- c.liveNds
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ch <- prometheus.MustNewConstMetric(c.liveNds, prometheus.GaugeValue, float64(len(c.b.node.LiveNodes())))
	st, err := c.b.node.Status(ctx)
	if err == nil {
		ch <- prometheus.MustNewConstMetric(c.lastSeq, prometheus.GaugeValue, float64(st.Log.LastSeq))
	}
	for _, r := range st.Replicas {
		shard := strconv.Itoa(r.Shard)
		ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(r.Applied), r.Collection, shard)
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(r.Pending), r.Collection, shard)
		if err == nil {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(st.Log.LastSeq-min(r.Applied, st.Log.LastSeq)), r.Collection, shard)
		}
	}
}
