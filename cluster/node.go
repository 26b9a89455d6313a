package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Options configure a Node. Zero values mean the documented defaults; internal/config's cluster
// section holds the same keys.
type Options struct {
	// NodeName is unique per node: the NATS server name and part of every replica's name. Required.
	NodeName string
	// ClientAddr is the embedded server's client listen address; default 127.0.0.1:4222. Port 0
	// picks a free one.
	ClientAddr string
	// ClusterAddr is the embedded server's route listen address; empty = a single-node cluster.
	ClusterAddr string
	// Advertise is the route address peers are told to reach this node at (host:port: behind NAT,
	// in containers, or through a proxy as in the partition test); empty = ClusterAddr.
	Advertise string
	// Routes are the peers' ClusterAddr; this node's own may be listed.
	Routes []string
	// URL of an external NATS JetStream cluster; set: no embedded server is started.
	URL string
	// Dir holds the embedded server's JetStream store (Dir/nats) and the shard replicas
	// (Dir/replicas/<collection>/<shard>). Required.
	Dir string
	// StoreDir overrides Dir/nats. Internal: tests.
	StoreDir string
	// Shards per collection; default 16. Every node must use the same value.
	Shards int
	// Retention is the log's maximum message age; 0 = keep every message. A replica whose next
	// message is gone installs its shard's newest snapshot (snapshot.go).
	Retention time.Duration
	// SnapshotInterval is how often the first assigned node of each shard stores a snapshot of
	// its replica in the Object Store bucket LK_SNAP; 0 = the default, 10 min; negative = none
	// (replicas still install the snapshots there are).
	SnapshotInterval time.Duration
	// LogReplicas is the stream's replica count; 0 = min(3, nodes), nodes being this node and its
	// distinct routes (embedded) or the servers the connection knows of (external).
	LogReplicas int
	// WriteBudget is how long Publish keeps retrying before ErrUnavailable; default 15s (a stream
	// leader election stalls writes about 5 s, docs/cluster.md).
	WriteBudget time.Duration
	// ReplicationFactor is how many nodes hold a replica of each shard of a served collection
	// (min(it, live nodes)); default 2 (placement.go).
	ReplicationFactor int
	// Grace is how long a node's heartbeat lives: a node silent that long leaves the assignment.
	// Default 10 s.
	Grace time.Duration
	// Linger is how long a replica no longer assigned to this node stays open at least (and
	// then only until every node it is assigned to serves it); 0 = the default, 2 min; negative =
	// no linger.
	Linger time.Duration
	// PlaceEvery is how often the node reads the live nodes and the assignment; default 1 s.
	PlaceEvery time.Duration
	// Logger defaults to a discard logger.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultShards      = 16
	DefaultClientAddr  = "127.0.0.1:4222"
	DefaultWriteBudget = 15 * time.Second
)

func (o Options) withDefaults() (Options, error) {
	if o.NodeName == "" || o.Dir == "" {
		return o, fmt.Errorf("%w: node name and data directory are required", ErrConfig)
	}
	if !validKey.MatchString(o.NodeName) {
		return o, fmt.Errorf("%w: node name %q: letters, digits, '-' and '_' only", ErrConfig, o.NodeName)
	}
	if o.ReplicationFactor <= 0 {
		o.ReplicationFactor = DefaultReplicationFactor
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.Linger == 0 {
		o.Linger = DefaultLinger
	}
	if o.SnapshotInterval == 0 {
		o.SnapshotInterval = DefaultSnapshotInterval
	}
	if o.PlaceEvery <= 0 {
		o.PlaceEvery = DefaultPlaceEvery
	}
	if o.ClientAddr == "" {
		o.ClientAddr = DefaultClientAddr
	}
	if o.Shards <= 0 {
		o.Shards = DefaultShards
	}
	if o.StoreDir == "" {
		o.StoreDir = filepath.Join(o.Dir, "nats")
	}
	if o.WriteBudget <= 0 {
		o.WriteBudget = DefaultWriteBudget
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Node is one member of a Lookalike cluster: its NATS server (embedded) or connection (external),
// the mutation log, and the shard replicas it holds. Close stops all of them.
type Node struct {
	o   Options
	log *slog.Logger
	srv *server.Server // nil with an external URL
	nc  *nats.Conn
	js  jetstream.JetStream

	mu       sync.Mutex
	closed   bool
	replicas map[string]*Replica
	// Placement (placement.go): the collections served, the last assignment and live nodes
	// read, and the placement loop.
	served      map[string]*served
	assign      map[string]*Assignment
	live        map[string]Heartbeat
	placeCancel context.CancelFunc
	placeDone   chan struct{}

	snapMu sync.Mutex
	snap   jetstream.ObjectStore // LK_SNAP once opened (snapshot.go)
}

// validKey: a node name is a KV key and a NATS server name.
var validKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Start starts the embedded server (or connects to o.URL), waits until the JetStream cluster
// answers and the stream exists, creating it when missing. ctx bounds the wait (a cluster forms
// only when a quorum of its servers is up).
func Start(ctx context.Context, o Options) (*Node, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{o: o, log: o.Logger.With("node", o.NodeName), replicas: map[string]*Replica{},
		served: map[string]*served{}, assign: map[string]*Assignment{}, live: map[string]Heartbeat{}}
	url := o.URL
	if url == "" {
		if n.srv, err = startServer(o, n.log); err != nil {
			return nil, err
		}
		url = n.srv.ClientURL()
	}
	n.nc, err = nats.Connect(url, nats.Name("lookalike "+o.NodeName), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err == nil {
		n.js, err = jetstream.New(n.nc)
	}
	if err == nil {
		err = n.ensureStream(ctx)
	}
	if err != nil {
		n.shutdown()
		return nil, err
	}
	n.log.Info("cluster node started", "nats", url, "embedded", n.srv != nil)
	return n, nil
}

// nodes is this node plus its distinct peers.
func (n *Node) nodes() int {
	if n.o.URL != "" {
		return 1 + len(n.nc.DiscoveredServers())
	}
	peers := map[string]bool{}
	for _, r := range n.o.Routes {
		if !sameAddr(r, n.o.ClusterAddr) {
			peers[r] = true
		}
	}
	return 1 + len(peers)
}

func sameAddr(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	norm := func(h string) string {
		if h == "" || h == "0.0.0.0" || h == "localhost" {
			return "127.0.0.1"
		}
		return h
	}
	return ap == bp && norm(ah) == norm(bh)
}

// logReplicas is the replica count of the log (and of the placement's KV buckets).
func (n *Node) logReplicas() int {
	if n.o.LogReplicas > 0 {
		return n.o.LogReplicas
	}
	return min(3, n.nodes())
}

// ensureStream creates LK_MUT when it does not exist, retrying while the JetStream cluster forms.
// An existing stream is kept as it is (another node created it; its replicas may have been
// changed by an operator).
func (n *Node) ensureStream(ctx context.Context) error {
	replicas := n.logReplicas()
	cfg := jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Lookalike mutation log (docs/cluster.md)",
		Subjects:    []string{subjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		MaxAge:      n.o.Retention,
		Duplicates:  2 * time.Minute,
		MaxMsgSize:  maxPayload,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
	}
	var last error
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := n.js.CreateStream(actx, cfg)
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: creating stream %s: %v (last: %v)", ErrUnavailable, StreamName, ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Shards is the node's shard count per collection.
func (n *Node) Shards() int { return n.o.Shards }

// Name is the node's name.
func (n *Node) Name() string { return n.o.NodeName }

// Publish appends m to the log of collection and returns its stream sequence once the stream
// acknowledged it (stored on a quorum). It retries with the same Nats-Msg-Id until the write
// budget or ctx ends, so a retried write lands once; then ErrUnavailable.
func (n *Node) Publish(ctx context.Context, collection string, m Mutation) (uint64, error) {
	if err := validCollection(collection); err != nil {
		return 0, err
	}
	if m.UpdatedAt.IsZero() && m.Op != OpDelete {
		m.UpdatedAt = time.Now().UTC()
	}
	data, err := m.AppendBinary(nil)
	if err != nil {
		return 0, err
	}
	if len(data) > maxPayload-1024 { // headroom for the subject and headers
		return 0, fmt.Errorf("%w: item %q encodes to %d bytes, max %d", ErrTooLarge, m.ID, len(data), maxPayload-1024)
	}
	if m.MsgID == "" {
		m.MsgID = nuid.Next()
	}
	msg := &nats.Msg{Subject: Subject(collection, ShardOf(m.ID, n.o.Shards)), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, m.MsgID)
	ctx, cancel := context.WithTimeout(ctx, n.o.WriteBudget)
	defer cancel()
	var last error
	for attempt := 0; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err := n.js.PublishMsg(actx, msg)
		acancel()
		if err == nil {
			return ack.Sequence, nil
		}
		last = err
		if errors.Is(err, nats.ErrConnectionClosed) {
			return 0, fmt.Errorf("%w: %v", ErrClosed, err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: write of %q not acknowledged after %d attempts: %v", ErrUnavailable, m.ID, attempt+1, last)
		case <-time.After(min(time.Duration(attempt+1)*100*time.Millisecond, time.Second)):
		}
	}
}

// Close stops every replica (each finishes the message it is applying and closes its store),
// then the connection and the embedded server. Safe to call twice.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	n.stopPlacement() // it opens and closes replicas: stop it first
	n.mu.Lock()
	rs := make([]*Replica, 0, len(n.replicas))
	for _, r := range n.replicas {
		rs = append(rs, r)
	}
	n.mu.Unlock()
	var errs []error
	for _, r := range rs {
		errs = append(errs, r.close())
	}
	n.shutdown()
	n.log.Info("cluster node stopped")
	return errors.Join(errs...)
}

func (n *Node) shutdown() {
	if n.nc != nil {
		n.nc.Close()
	}
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
}

// LogLeader names the server that leads the stream (its writes' Raft leader).
func (n *Node) LogLeader(ctx context.Context) (string, error) {
	st, err := n.js.Stream(ctx, StreamName)
	if err != nil {
		return "", fmt.Errorf("stream info: %w", err)
	}
	if c := st.CachedInfo().Cluster; c != nil {
		return c.Leader, nil
	}
	return n.o.NodeName, nil
}

// MoveLogLeader asks the stream's leader to step down in favour of server to ("" = any other).
// Moving the leadership off a node before stopping it for maintenance avoids the write stall of
// an election after it goes.
func (n *Node) MoveLogLeader(ctx context.Context, to string) error {
	req := []byte(`{}`)
	if to != "" {
		req = fmt.Appendf(nil, `{"placement":{"preferred":%q}}`, to)
	}
	resp, err := n.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+StreamName, req)
	if err != nil {
		return fmt.Errorf("%w: leader stepdown: %v", ErrUnavailable, err)
	}
	var r struct {
		Success bool `json:"success"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return fmt.Errorf("leader stepdown: %w", err)
	}
	if !r.Success {
		msg := "refused"
		if r.Error != nil {
			msg = r.Error.Description
		}
		return fmt.Errorf("%w: leader stepdown: %s", ErrUnavailable, msg)
	}
	return nil
}
