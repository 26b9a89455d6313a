package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The cluster section is off by default and every key has a LOOKALIKE_CLUSTER_* override.
func TestClusterSection(t *testing.T) {
	if d := Default().Cluster; d.Enabled || d.Shards != 16 || d.ReplicationFactor != 2 || d.NATSURL != "" || d.SnapshotInterval != 10*time.Minute {
		t.Fatalf("default cluster section = %+v", d)
	}
	cfg, err := Load("", []string{
		"LOOKALIKE_CLUSTER_ENABLED=true",
		"LOOKALIKE_CLUSTER_NODE_NAME=n1",
		"LOOKALIKE_CLUSTER_CLIENT_ADDR=127.0.0.1:14222",
		"LOOKALIKE_CLUSTER_CLUSTER_ADDR=127.0.0.1:16222",
		"LOOKALIKE_CLUSTER_ADVERTISE=lk1.example:6222",
		"LOOKALIKE_CLUSTER_ROUTES=127.0.0.1:16223,127.0.0.1:16224",
		"LOOKALIKE_CLUSTER_SHARDS=8",
		"LOOKALIKE_CLUSTER_REPLICATION_FACTOR=3",
		"LOOKALIKE_CLUSTER_RETENTION=720h",
		"LOOKALIKE_CLUSTER_GRACE=5s",
		"LOOKALIKE_CLUSTER_REPLICA_LINGER=0s",
		"LOOKALIKE_CLUSTER_SNAPSHOT_INTERVAL=0s",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Cluster{Enabled: true, NodeName: "n1", ClientAddr: "127.0.0.1:14222", ClusterAddr: "127.0.0.1:16222", Advertise: "lk1.example:6222",
		Routes: []string{"127.0.0.1:16223", "127.0.0.1:16224"}, Shards: 8, ReplicationFactor: 3, Retention: 720 * time.Hour,
		Grace: 5 * time.Second}
	if !reflect.DeepEqual(cfg.Cluster, want) {
		t.Fatalf("cluster = %+v, want %+v", cfg.Cluster, want)
	}
	cfg, err = Load("", []string{"LOOKALIKE_CLUSTER_ENABLED=1", "LOOKALIKE_CLUSTER_NODE_NAME=n1",
		"LOOKALIKE_CLUSTER_NATS_URL=nats://10.0.0.1:4222,nats://10.0.0.2:4222"})
	if err != nil || cfg.Cluster.NATSURL == "" {
		t.Fatalf("external URL: %v %+v", err, cfg.Cluster)
	}
}

func TestClusterValidationNamesTheKey(t *testing.T) {
	cases := []struct{ name, yaml, wantKey string }{
		{"zero shards", "cluster:\n  shards: 0\n", "cluster.shards"},
		{"too many shards", "cluster:\n  shards: 5000\n", "cluster.shards"},
		{"zero replicas", "cluster:\n  replication_factor: 0\n", "cluster.replication_factor"},
		{"negative retention", "cluster:\n  retention: -1s\n", "cluster.retention"},
		{"tiny retention", "cluster:\n  retention: 5s\n", "cluster.retention"},
		{"enabled without a name", "cluster:\n  enabled: true\n", "cluster.node_name"},
		{"advertise without a listen address", "cluster:\n  advertise: lk1:6222\n", "cluster.advertise"},
		{"bad advertise", "cluster:\n  cluster_addr: 127.0.0.1:6222\n  advertise: lk1\n", "cluster.advertise"},
		{"grace too short", "cluster:\n  grace: 1s\n", "cluster.grace"},
		{"negative linger", "cluster:\n  replica_linger: -1s\n", "cluster.replica_linger"},
		{"negative snapshot interval", "cluster:\n  snapshot_interval: -1s\n", "cluster.snapshot_interval"},
		{"tiny snapshot interval", "cluster:\n  snapshot_interval: 1s\n", "cluster.snapshot_interval"},
		{"a name with a dot", "cluster:\n  enabled: true\n  node_name: n1.example\n", "cluster.node_name"},
		{"routes without a listen address", "cluster:\n  routes: [\"127.0.0.1:6222\"]\n", "cluster.cluster_addr"},
		{"bad route", "cluster:\n  cluster_addr: 127.0.0.1:6222\n  routes: [\"nohost\"]\n", "cluster.routes[0]"},
		{"bad client address", "cluster:\n  client_addr: localhost\n", "cluster.client_addr"},
		{"url and routes", "cluster:\n  nats_url: nats://a:4222\n  cluster_addr: 127.0.0.1:6222\n", "cluster.nats_url"},
		{"unknown key", "cluster:\n  shard: 4\n", "shard"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, nil)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantKey) {
				t.Fatalf("want ErrInvalid naming %q, got %v", tc.wantKey, err)
			}
		})
	}
}
