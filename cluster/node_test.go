package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lookalike/lookalike/index"
)

// startSingle starts a one-node cluster (a standalone JetStream server) with one shard replica.
func startSingle(t *testing.T, dir string) (*Node, *Replica) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := Start(ctx, Options{NodeName: "solo", ClientAddr: "127.0.0.1:0", Dir: dir, Shards: 1, WriteBudget: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	r, err := n.OpenReplica("products", 0, testCollection, &index.Options{NoSync: true, SnapshotInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return n, r
}

// publisher publishes to "products" through n, failing the test on an error.
func publisher(t *testing.T, ctx context.Context, n *Node) func(Mutation) uint64 {
	return func(m Mutation) uint64 {
		t.Helper()
		seq, err := n.Publish(ctx, "products", m)
		if err != nil {
			t.Fatalf("publish %s %s: %v", m.Op, m.ID, err)
		}
		return seq
	}
}

// The semantics a replica gives each kind of message: retries with one MsgID land once,
// preconditions are checked at apply time (a refused message changes nothing and is passed),
// bad input is refused before it reaches the log, and a reopened replica resumes after its
// applied position without applying anything twice.
func TestSingleNodeSemantics(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	n, r := startSingle(t, dir)
	pub := publisher(t, ctx, n)
	get := func(id string) (index.Item, error) {
		t.Helper()
		return r.Collection().Get(id)
	}
	s1 := pub(Mutation{Op: OpUpsert, ID: "a", Vector: vecOf("a"), Metadata: []byte(`{"c":"red"}`), MsgID: "w1"})
	if again := pub(Mutation{Op: OpUpsert, ID: "a", Vector: vecOf("x"), MsgID: "w1"}); again != s1 {
		t.Fatalf("a retry with the same MsgID got sequence %d, the first %d", again, s1)
	}
	if err := r.WaitApplied(ctx, s1); err != nil {
		t.Fatal(err)
	}
	a, err := get("a")
	if err != nil || string(a.Metadata) != `{"c":"red"}` {
		t.Fatalf("a = %+v, %v", a, err)
	}
	steps := []struct {
		name  string
		m     Mutation
		check func() error
	}{
		{"edit with a stale version is a no-op", Mutation{Op: OpMetaEdit, ID: "a", IfVersion: a.Version + 5, Metadata: []byte(`{"c":"blue"}`)},
			func() error { return metaIs(get, "a", `{"c":"red"}`) }},
		{"edit at the current version", Mutation{Op: OpMetaEdit, ID: "a", IfVersion: a.Version, Metadata: []byte(`{"size":2}`)},
			func() error { return metaIs(get, "a", `{"c":"red","size":2}`) }},
		{"edit of an absent item is a no-op", Mutation{Op: OpMetaEdit, ID: "ghost", Metadata: []byte(`{"x":1}`)},
			func() error { return absent(get, "ghost") }},
		{"a patch that is not an object is a no-op", Mutation{Op: OpMetaEdit, ID: "a", Metadata: []byte(`[1]`)},
			func() error { return metaIs(get, "a", `{"c":"red","size":2}`) }},
		{"an invalid vector is a no-op", Mutation{Op: OpUpsert, ID: "b", Vector: []float32{1, 2}},
			func() error { return absent(get, "b") }},
		{"delete with a stale version is a no-op", Mutation{Op: OpDelete, ID: "a", IfVersion: 1000},
			func() error { return metaIs(get, "a", `{"c":"red","size":2}`) }},
		{"delete of an absent item", Mutation{Op: OpDelete, ID: "ghost"}, func() error { return absent(get, "ghost") }},
		{"upsert", Mutation{Op: OpUpsert, ID: "c", Vector: vecOf("c")}, func() error { return metaIs(get, "c", "") }},
		{"delete", Mutation{Op: OpDelete, ID: "a"}, func() error { return absent(get, "a") }},
	}
	for _, st := range steps {
		seq := pub(st.m)
		if err := r.WaitApplied(ctx, seq); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if err := st.check(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
	}
	last := r.Applied()
	c, _ := get("c")

	if _, err := n.Publish(ctx, "products", Mutation{Op: OpUpsert, ID: "big", Vector: vecOf("big"), Source: make([]byte, maxPayload)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("an 8 MiB source: %v", err)
	}
	if _, err := n.Publish(ctx, "bad.name", Mutation{Op: OpDelete, ID: "x"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("a collection name with a dot: %v", err)
	}

	// Reopen: the replica resumes after its position; nothing is applied twice (c keeps its version).
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	seq := pub(Mutation{Op: OpUpsert, ID: "d", Vector: vecOf("d")})
	r, err = n.OpenReplica("products", 0, testCollection, &index.Options{NoSync: true, SnapshotInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	// It follows the log as soon as it opens: by now it may have applied d too (CI once saw that).
	if a := r.Applied(); a != last && a != seq {
		t.Fatalf("reopened at %d, closed at %d (d is %d)", a, last, seq)
	}
	if err := r.WaitApplied(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if c2, err := get("c"); err != nil || c2.Version != c.Version {
		t.Fatalf("c after reopen: %+v %v (was version %d)", c2, err, c.Version)
	}
	if _, err := get("d"); err != nil {
		t.Fatalf("d written while the replica was closed: %v", err)
	}
}

func metaIs(get func(string) (index.Item, error), id, want string) error {
	it, err := get(id)
	if err != nil {
		return err
	}
	if string(it.Metadata) != want {
		return errors.New("metadata " + string(it.Metadata) + ", want " + want)
	}
	return nil
}

func absent(get func(string) (index.Item, error), id string) error {
	if _, err := get(id); !errors.Is(err, index.ErrNotFound) {
		return errors.New(id + " is present")
	}
	return nil
}

// A replica whose next message the log no longer holds refuses to follow (ErrTruncated) instead
// of serving a catalog with a hole in it.
func TestTruncatedLogStopsTheReplica(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	n, r := startSingle(t, dir)
	seq, err := n.Publish(ctx, "products", Mutation{Op: OpUpsert, ID: "a", Vector: vecOf("a")})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WaitApplied(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"b", "c"} {
		if _, err := n.Publish(ctx, "products", Mutation{Op: OpUpsert, ID: id, Vector: vecOf(id)}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := n.js.Stream(ctx, StreamName)
	if err != nil {
		t.Fatal(err)
	}
	// Retention removed b; c remains.
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(seq+2)); err != nil {
		t.Fatal(err)
	}
	r, err = n.OpenReplica("products", 0, testCollection, &index.Options{NoSync: true, SnapshotInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !errors.Is(r.Err(), ErrTruncated) {
		if time.Now().After(deadline) {
			t.Fatalf("replica error %v, want ErrTruncated", r.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := r.Collection().Get("c"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("the replica applied past the hole: %v", err)
	}
}

// With an external NATS URL the node starts no server of its own: here a second node uses the
// first one's server as its "external" NATS.
func TestExternalURL(t *testing.T) {
	ctx := context.Background()
	host, _ := startSingle(t, t.TempDir())
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	n, err := Start(sctx, Options{NodeName: "client", URL: host.srv.ClientURL(), Dir: t.TempDir(), Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.srv != nil {
		t.Fatal("a node with an external URL started a server")
	}
	r, err := n.OpenReplica("products", 0, testCollection, &index.Options{NoSync: true, SnapshotInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := n.Publish(ctx, "products", Mutation{Op: OpUpsert, ID: "e", Vector: vecOf("e")})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WaitApplied(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Collection().Get("e"); err != nil {
		t.Fatal(err)
	}
}
