package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lookalike/lookalike/index"
)

// listAll is every item of the replica's collection, by id (metadata and version compared).
func listAll(t *testing.T, r *Replica) map[string]index.Item {
	t.Helper()
	out := map[string]index.Item{}
	cursor := ""
	for {
		items, next, err := r.Collection().List(cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			out[it.ID] = it
		}
		if next == "" {
			return out
		}
		cursor = next
	}
}

// A snapshot in the Object Store lets replicas catch up past the log's retention: after the log
// is purged below the snapshot's position, a stale replica (its next message gone) and a replica
// on a wiped directory both install the snapshot, replay the rest and hold every item with the
// original's versions; a replica whose gap no snapshot covers stays out of its shard's groups.
func TestSnapshotCatchUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	dir := t.TempDir()
	n, r := startSingle(t, dir)
	dbOpts := &index.Options{NoSync: true, SnapshotInterval: -1}
	pub := publisher(t, ctx, n)
	upsert := func(id string) uint64 {
		return pub(Mutation{Op: OpUpsert, ID: id, Vector: vecOf(id), Metadata: fmt.Appendf(nil, `{"id":%q}`, id)})
	}
	wait := func(r *Replica, seq uint64) {
		t.Helper()
		if err := r.WaitApplied(ctx, seq); err != nil {
			t.Fatalf("replica at %d waiting for %d: %v (err %v)", r.Applied(), seq, err, r.Err())
		}
	}
	if info, err := r.Snapshot(ctx); err != nil || info.Applied != 0 {
		t.Fatalf("snapshot of an empty replica = %+v, %v", info, err)
	}
	// A stale copy of the replica, taken while it is closed after the first writes.
	for i := range 5 {
		upsert(fmt.Sprint("i", i))
	}
	wait(r, 5)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	replicas := filepath.Join(dir, "replicas")
	stale := filepath.Join(t.TempDir(), "stale")
	if err := os.CopyFS(stale, os.DirFS(replicas)); err != nil {
		t.Fatal(err)
	}
	r, err := n.OpenReplica("products", 0, testCollection, dbOpts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 5; i < 20; i++ {
		upsert(fmt.Sprint("i", i))
	}
	pub(Mutation{Op: OpMetaEdit, ID: "i3", Metadata: []byte(`{"c":"red"}`)})
	last := pub(Mutation{Op: OpDelete, ID: "i4"})
	wait(r, last)
	snap, err := r.Snapshot(ctx)
	if err != nil || snap.Applied != last || snap.Node != "solo" || snap.Size == 0 {
		t.Fatalf("snapshot = %+v, %v; want applied %d", snap, err, last)
	}
	if again, err := r.Snapshot(ctx); err != nil || again.Applied != last {
		t.Fatalf("a second snapshot without news = %+v, %v", again, err)
	}
	// Writes after the snapshot, which the log keeps.
	for i := 20; i < 25; i++ {
		upsert(fmt.Sprint("i", i))
	}
	pub(Mutation{Op: OpMetaEdit, ID: "i0", Metadata: []byte(`{"c":"blue"}`)})
	last2 := pub(Mutation{Op: OpDelete, ID: "i1"})
	wait(r, last2)
	want := listAll(t, r)
	if len(want) != 23 {
		t.Fatalf("%d items before the purge, want 23", len(want))
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := n.js.Stream(ctx, StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(snap.Applied+1)); err != nil {
		t.Fatal(err)
	}

	check := func(name string) *Replica {
		t.Helper()
		start := time.Now()
		r, err := n.OpenReplica("products", 0, testCollection, dbOpts)
		if err != nil {
			t.Fatal(err)
		}
		wait(r, last2)
		got := listAll(t, r)
		for id, w := range want {
			g, ok := got[id]
			if !ok || g.Version != w.Version || string(g.Metadata) != string(w.Metadata) {
				t.Fatalf("%s: item %s = %+v (present %v), want version %d metadata %s", name, id, g, ok, w.Version, w.Metadata)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d items, want %d", name, len(got), len(want))
		}
		for !r.serving() {
			if ctx.Err() != nil {
				t.Fatalf("%s: the restored replica does not serve: %v", name, r.Err())
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("%s: caught up from the snapshot at %d to %d in %v", name, snap.Applied, last2, time.Since(start).Round(time.Millisecond))
		return r
	}
	// The stale replica needs message 6, long purged.
	if err := os.RemoveAll(replicas); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(stale, replicas); err != nil {
		t.Fatal(err)
	}
	r = check("stale replica")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(replicas); err != nil {
		t.Fatal(err)
	}
	r = check("wiped replica")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// Retention past the replica with no newer snapshot: it stays out and says why.
	upsert("x")
	y := upsert("y")
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(y)); err != nil {
		t.Fatal(err)
	}
	r, err = n.OpenReplica("products", 0, testCollection, dbOpts)
	if err != nil {
		t.Fatal(err)
	}
	for !errors.Is(r.Err(), ErrTruncated) {
		if ctx.Err() != nil {
			t.Fatalf("replica error %v, want ErrTruncated", r.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.serving() || r.Applied() != last2 {
		t.Fatalf("a replica with a hole: serving %v, applied %d (want %d)", r.serving(), r.Applied(), last2)
	}
	if _, err := r.Collection().Get("y"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("the replica applied past the hole: %v", err)
	}
}

// A serving replica stores a snapshot every SnapshotInterval, only when it has news.
func TestPeriodicSnapshot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := Start(ctx, Options{NodeName: "snap", ClientAddr: "127.0.0.1:0", Dir: t.TempDir(), Shards: 1,
		WriteBudget: 3 * time.Second, SnapshotInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.OpenReplica("products", 0, testCollection, &index.Options{NoSync: true, SnapshotInterval: -1}); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		var seq uint64
		for i := range 3 {
			id := fmt.Sprint("p", round, i)
			if seq, err = n.Publish(ctx, "products", Mutation{Op: OpUpsert, ID: id, Vector: vecOf(id)}); err != nil {
				t.Fatal(err)
			}
		}
		for {
			info, err := n.LatestSnapshot(ctx, "products", 0)
			if err != nil {
				t.Fatal(err)
			}
			if info != nil && info.Applied == seq {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("round %d: latest snapshot %+v, want one at %d", round, info, seq)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
