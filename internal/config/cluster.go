package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"time"
)

// Cluster configures the multi-node mode (docs/cluster.md): a NATS JetStream mutation log that
// every node's shard replicas apply. Off by default: a single `lookalike serve` needs no other
// server. Field comments live in configs/lookalike.yaml.
type Cluster struct {
	Enabled           bool          `yaml:"enabled"`
	NodeName          string        `yaml:"node_name"`
	ClientAddr        string        `yaml:"client_addr"`
	ClusterAddr       string        `yaml:"cluster_addr"`
	Advertise         string        `yaml:"advertise"`
	Routes            []string      `yaml:"routes"`
	NATSURL           string        `yaml:"nats_url"`
	Shards            int           `yaml:"shards"`
	ReplicationFactor int           `yaml:"replication_factor"`
	Retention         time.Duration `yaml:"retention"`
	Grace             time.Duration `yaml:"grace"`
	ReplicaLinger     time.Duration `yaml:"replica_linger"`
	SnapshotInterval  time.Duration `yaml:"snapshot_interval"`
}

// Defaults of the cluster section; package cluster documents the same values for its zero options.
const (
	DefaultClusterShards            = 16
	DefaultClusterReplicationFactor = 2
	DefaultClusterClientAddr        = "127.0.0.1:4222"
	DefaultClusterGrace             = 10 * time.Second
	DefaultClusterReplicaLinger     = 2 * time.Minute
	DefaultClusterSnapshotInterval  = 10 * time.Minute
)

func defaultCluster() Cluster {
	return Cluster{ClientAddr: DefaultClusterClientAddr, Shards: DefaultClusterShards,
		ReplicationFactor: DefaultClusterReplicationFactor, Grace: DefaultClusterGrace, ReplicaLinger: DefaultClusterReplicaLinger,
		SnapshotInterval: DefaultClusterSnapshotInterval}
}

// validNodeName is what package cluster accepts as a node name.
var validNodeName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// MaxClusterShards bounds cluster.shards: each shard replica is its own bbolt file and consumer.
const MaxClusterShards = 1024

// validateCluster checks the cluster section. The shape is checked always (a typo is reported
// even while the section is off); what a running node needs only when enabled.
func (c *Config) validateCluster(bad func(key, format string, args ...any) error) error {
	k := c.Cluster
	switch {
	case k.Shards < 1 || k.Shards > MaxClusterShards:
		return bad("cluster.shards", "must be in 1..%d, got %d", MaxClusterShards, k.Shards)
	case k.ReplicationFactor < 1:
		return bad("cluster.replication_factor", "must be >= 1, got %d", k.ReplicationFactor)
	case k.Retention < 0:
		return bad("cluster.retention", "must be >= 0 (0 = keep every message), got %v", k.Retention)
	case k.Retention > 0 && k.Retention < time.Minute:
		return bad("cluster.retention", "must be 0 or >= 1m, got %v", k.Retention)
	case k.Grace < 2*time.Second || k.Grace > 10*time.Minute:
		return bad("cluster.grace", "must be in 2s..10m (a node's heartbeat lives this long), got %v", k.Grace)
	case k.ReplicaLinger < 0:
		return bad("cluster.replica_linger", "must be >= 0 (0: close an unassigned replica as soon as its replacements serve), got %v", k.ReplicaLinger)
	case k.SnapshotInterval < 0 || (k.SnapshotInterval > 0 && k.SnapshotInterval < 10*time.Second):
		return bad("cluster.snapshot_interval", "must be 0 (no snapshots) or >= 10s, got %v", k.SnapshotInterval)
	case k.NATSURL != "" && (len(k.Routes) > 0 || k.ClusterAddr != ""):
		return bad("cluster.nats_url", "an external NATS cluster excludes cluster.routes and cluster.cluster_addr (the embedded server's)")
	case k.Advertise != "" && k.ClusterAddr == "":
		return bad("cluster.advertise", "is the route address peers are told; it needs cluster.cluster_addr")
	case len(k.Routes) > 0 && k.ClusterAddr == "":
		return bad("cluster.cluster_addr", "must be set when cluster.routes names peers")
	}
	if k.NATSURL != "" {
		if u, err := url.Parse(k.NATSURL); err != nil || u.Host == "" {
			return bad("cluster.nats_url", "must be a URL such as nats://host:4222, got %q", k.NATSURL)
		}
	}
	for _, a := range []struct{ key, v string }{{"cluster.client_addr", k.ClientAddr}, {"cluster.cluster_addr", k.ClusterAddr}, {"cluster.advertise", k.Advertise}} {
		if a.v == "" && a.key != "cluster.client_addr" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return bad(a.key, "must be host:port, got %q", a.v)
		}
	}
	for i, r := range k.Routes {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return bad(fmt.Sprintf("cluster.routes[%d]", i), "must be host:port (a peer's cluster_addr), got %q", r)
		}
	}
	if k.Enabled && k.NodeName == "" {
		return bad("cluster.node_name", "must be set when cluster.enabled (unique per node)")
	}
	if k.NodeName != "" && !validNodeName.MatchString(k.NodeName) {
		return bad("cluster.node_name", "letters, digits, '-' and '_' only (it is a NATS server name and a key of the placement bucket), got %q", k.NodeName)
	}
	return nil
}
