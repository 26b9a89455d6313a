package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookalike/lookalike/cluster"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// clusterBackend is api.Cluster (serve.go wires it; only serve.go imports api) on a cluster.Node: this node holds a replica of every shard of
// the collections it serves (placement by cluster.replication_factor is not applied yet,
// docs/cluster.md), so reads of one item are local and searches scatter over the node's peers.
type clusterBackend struct {
	node     *cluster.Node
	replicas map[string][]*cluster.Replica // collection → replica by shard
	timeout  time.Duration                 // of one search's scatter-gather
	// errUnavailable is api.ErrClusterUnavailable: no quorum, or no shard answered.
	errUnavailable error
}

// clusterStartWait bounds how long serve waits for the cluster to form (a quorum of its nodes).
const clusterStartWait = 2 * time.Minute

// startCluster starts this node (its NATS server, or a connection to cluster.nats_url) and opens
// its replicas of every shard of col, under DATA/cluster.
func startCluster(ctx context.Context, cfg config.Config, col *index.Collection, log *slog.Logger, errUnavailable error) (*clusterBackend, error) {
	c := cfg.Cluster
	sctx, cancel := context.WithTimeout(ctx, clusterStartWait)
	defer cancel()
	n, err := cluster.Start(sctx, cluster.Options{NodeName: c.NodeName, ClientAddr: c.ClientAddr, ClusterAddr: c.ClusterAddr, Advertise: c.Advertise,
		Routes: c.Routes, URL: c.NATSURL, Dir: filepath.Join(cfg.Data.Dir, "cluster"), Shards: c.Shards,
		Retention: c.Retention, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	b := &clusterBackend{node: n, replicas: map[string][]*cluster.Replica{}, timeout: 2 * time.Second, errUnavailable: errUnavailable}
	cc := col.Config()
	reps := make([]*cluster.Replica, n.Shards())
	for s := range reps {
		if reps[s], err = n.OpenReplica(col.Name(), s, cc, nil); err != nil {
			n.Close()
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	b.replicas[col.Name()] = reps
	return b, nil
}

func (b *clusterBackend) Close() error { return b.node.Close() }

func (b *clusterBackend) replica(collection, id string) (*cluster.Replica, error) {
	reps, ok := b.replicas[collection]
	if !ok {
		return nil, fmt.Errorf("%w: collection %q is not served by the cluster", index.ErrNotFound, collection)
	}
	return reps[cluster.ShardOf(id, len(reps))], nil
}

// unavailable maps the cluster's "no quorum / no shard answered" onto the API's.
func (b *clusterBackend) unavailable(err error) error {
	if errors.Is(err, cluster.ErrUnavailable) {
		return fmt.Errorf("%w: %v", b.errUnavailable, err)
	}
	return err
}

// publish appends m and, for read-your-writes through this node, waits (briefly) until this
// node's replica of the item's shard applied it; the write is acknowledged either way.
func (b *clusterBackend) publish(ctx context.Context, collection string, m cluster.Mutation) (uint64, error) {
	r, err := b.replica(collection, m.ID)
	if err != nil {
		return 0, err
	}
	seq, err := b.node.Publish(ctx, collection, m)
	if err != nil {
		return 0, b.unavailable(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = r.WaitApplied(wctx, seq) // a slow replica delays nothing beyond this: the log has the write
	return seq, nil
}

func (b *clusterBackend) Upsert(ctx context.Context, collection string, it index.Item) (uint64, error) {
	return b.publish(ctx, collection, cluster.Mutation{Op: cluster.OpUpsert, ID: it.ID, IfVersion: it.IfVersion, UpdatedAt: it.UpdatedAt,
		Vector: it.Vector, Thumbnail: it.Thumbnail, Source: it.Source, ContentHash: it.ContentHash, Metadata: it.Metadata})
}

func (b *clusterBackend) Delete(ctx context.Context, collection, id string) (uint64, error) {
	return b.publish(ctx, collection, cluster.Mutation{Op: cluster.OpDelete, ID: id})
}

func (b *clusterBackend) Get(_ context.Context, collection, id string) (index.Item, error) {
	r, err := b.replica(collection, id)
	if err != nil {
		return index.Item{}, err
	}
	return r.Collection().Get(id)
}

func (b *clusterBackend) Search(ctx context.Context, collection string, vector []float32, k int, filter string) ([]index.Result, int, int, error) {
	if _, ok := b.replicas[collection]; !ok {
		return nil, 0, 0, fmt.Errorf("%w: collection %q is not served by the cluster", index.ErrNotFound, collection)
	}
	res, err := b.node.Search(ctx, collection, cluster.Query{Vector: vector, K: k, Filter: filter}, b.timeout)
	if err != nil {
		if errors.Is(err, cluster.ErrInvalidQuery) {
			return nil, 0, 0, fmt.Errorf("%w: %v", index.ErrInvalidFilter, err)
		}
		return nil, 0, 0, b.unavailable(err)
	}
	return res.Results, res.Shards, res.Of, nil
}

// clusterStatusJSON is GET /v1/cluster.
type clusterStatusJSON struct {
	Node     string              `json:"node"`
	Shards   int                 `json:"shards"`
	Log      logStatusJSON       `json:"log"`
	Replicas []replicaStatusJSON `json:"replicas"`
	Error    string              `json:"error,omitempty"`
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
	// Lag is the log's last sequence minus the applied one: an upper bound (the log holds every
	// shard's messages; a replica with nothing pending for its shard still shows the others').
	Lag     uint64 `json:"lag"`
	Serving bool   `json:"serving"`
	Err     string `json:"error,omitempty"`
}

func (b *clusterBackend) Status(ctx context.Context) (any, error) {
	st, err := b.node.Status(ctx)
	out := clusterStatusJSON{Node: st.Node, Shards: b.node.Shards(), Replicas: []replicaStatusJSON{},
		Log: logStatusJSON{Leader: st.Log.Leader, FirstSeq: st.Log.FirstSeq, LastSeq: st.Log.LastSeq, Messages: st.Log.Messages, Peers: []peerStatusJSON{}}}
	if err != nil {
		out.Error = err.Error() // the replicas are still worth showing
	}
	for _, p := range st.Log.Peers {
		out.Log.Peers = append(out.Log.Peers, peerStatusJSON{Name: p.Name, Current: p.Current, Offline: p.Offline, Lag: p.Lag})
	}
	for _, r := range st.Replicas {
		rj := replicaStatusJSON{Collection: r.Collection, Shard: r.Shard, Node: st.Node, Applied: r.Applied, Serving: r.Serving, Err: r.Err}
		if st.Log.LastSeq > r.Applied {
			rj.Lag = st.Log.LastSeq - r.Applied
		}
		out.Replicas = append(out.Replicas, rj)
	}
	return out, nil
}

// clusterCollector exports the node's replica positions on /metrics, read at scrape time.
type clusterCollector struct {
	b                     *clusterBackend
	applied, lag, lastSeq *prometheus.Desc
}

func newClusterCollector(b *clusterBackend) *clusterCollector {
	return &clusterCollector{b: b,
		applied: prometheus.NewDesc("lookalike_cluster_replica_applied_seq", "Stream sequence of the last mutation this node's replica applied.", []string{"collection", "shard"}, nil),
		lag: prometheus.NewDesc("lookalike_cluster_replica_lag", "The log's last sequence minus the replica's applied one (an upper bound: the log holds every shard).",
			[]string{"collection", "shard"}, nil),
		lastSeq: prometheus.NewDesc("lookalike_cluster_log_last_seq", "Last sequence of the mutation log as this node sees it.", nil, nil),
	}
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.applied
	ch <- c.lag
	ch <- c.lastSeq
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := c.b.node.Status(ctx)
	if err == nil {
		ch <- prometheus.MustNewConstMetric(c.lastSeq, prometheus.GaugeValue, float64(st.Log.LastSeq))
	}
	for _, r := range st.Replicas {
		shard := strconv.Itoa(r.Shard)
		ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(r.Applied), r.Collection, shard)
		if err == nil {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(st.Log.LastSeq-min(r.Applied, st.Log.LastSeq)), r.Collection, shard)
		}
	}
}
