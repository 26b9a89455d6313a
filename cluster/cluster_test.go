package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/testport"
)

const testDims = 8

var testCollection = index.CollectionConfig{Fingerprint: "cluster-test", Dims: testDims, EfConstruction: 40}

// vecOf derives an item's vector from its id, so any node can check what was written.
func vecOf(id string) []float32 {
	h := fnv.New64a()
	h.Write([]byte(id))
	rng := rand.New(rand.NewSource(int64(h.Sum64())))
	v := make([]float32, testDims)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// freeAddrs picks n distinct free loopback addresses for the servers to take.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		port, err := testport.Free()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	return out
}

// testNode is one node's options and, while it runs, the node and its replicas (all shards).
type testNode struct {
	o        Options
	node     *Node
	replicas []*Replica
}

func (tn *testNode) start(t *testing.T, ctx context.Context) error {
	n, err := Start(ctx, tn.o)
	if err != nil {
		return err
	}
	tn.node, tn.replicas = n, nil
	for s := 0; s < tn.o.Shards; s++ {
		r, err := n.OpenReplica("products", s, testCollection, &index.Options{NoSync: true, SnapshotInterval: -1})
		if err != nil {
			n.Close()
			return err
		}
		tn.replicas = append(tn.replicas, r)
	}
	return nil
}

// clusterOptions are the options of nodes names forming one cluster on loopback.
func clusterOptions(t *testing.T, names []string, shards int) []Options {
	t.Helper()
	addrs := freeAddrs(t, 2*len(names))
	routes := addrs[len(names):]
	dir := t.TempDir()
	out := make([]Options, len(names))
	for i, name := range names {
		out[i] = Options{NodeName: name, ClientAddr: addrs[i], ClusterAddr: routes[i], Routes: routes,
			Dir: filepath.Join(dir, name), Shards: shards, WriteBudget: 20 * time.Second}
	}
	return out
}

// startCluster starts names as one cluster of embedded servers on loopback.
func startCluster(t *testing.T, names []string, shards int) []*testNode {
	t.Helper()
	var nodes []*testNode
	for _, o := range clusterOptions(t, names, shards) {
		nodes = append(nodes, &testNode{o: o})
	}
	startNodes(t, nodes)
	return nodes
}

// startNodes starts nodes concurrently (a JetStream cluster answers only once a quorum of its
// servers runs) and closes them when the test ends.
func startNodes(t *testing.T, nodes []*testNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, tn := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = tn.start(t, ctx)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, tn := range nodes {
			if tn.node != nil {
				if err := tn.node.Close(); err != nil {
					t.Errorf("close %s: %v", tn.o.NodeName, err)
				}
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("cluster did not form: %v", err)
	}
}

// want is what the acknowledged writes say an item must be: present with this metadata, or gone.
type want struct {
	meta    string
	deleted bool
	seq     uint64
}

// writer publishes upserts through one node; every 5th item then gets a metadata edit and every
// 7th is deleted. Only acknowledged writes enter acked; it stops at stop or its first failure, whose
// item it drops from acked.
func writer(ctx context.Context, n *Node, prefix string, count int, stop <-chan struct{}, mu *sync.Mutex, acked map[string]want) error {
	for i := 0; i < count; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		id := fmt.Sprintf("%s-%d", prefix, i)
		meta := fmt.Sprintf(`{"by":%q,"i":%d}`, prefix, i)
		seq, err := n.Publish(ctx, "products", Mutation{Op: OpUpsert, ID: id, Vector: vecOf(id), Metadata: []byte(meta)})
		if err != nil {
			return uncertain(mu, acked, id, fmt.Errorf("upsert %s: %w", id, err))
		}
		mu.Lock()
		acked[id] = want{meta: meta, seq: seq}
		mu.Unlock()
		var w want
		switch {
		case i%7 == 0:
			seq, err = n.Publish(ctx, "products", Mutation{Op: OpDelete, ID: id})
			w = want{deleted: true, seq: seq}
		case i%5 == 0:
			seq, err = n.Publish(ctx, "products", Mutation{Op: OpMetaEdit, ID: id, Metadata: []byte(`{"edited":true}`)})
			w = want{meta: fmt.Sprintf(`{"by":%q,"i":%d,"edited":true}`, prefix, i), seq: seq}
		default:
			continue
		}
		if err != nil {
			return uncertain(mu, acked, id, fmt.Errorf("change %s: %w", id, err))
		}
		mu.Lock()
		acked[id] = w
		mu.Unlock()
	}
	return nil
}

// uncertain drops id from the checks: a write that failed may still have landed (its PubAck lost).
func uncertain(mu *sync.Mutex, acked map[string]want, id string, err error) error {
	mu.Lock()
	delete(acked, id)
	mu.Unlock()
	return err
}

// checkReplicas waits until every replica of tn has applied the acknowledged writes of its shard,
// then checks each item, and returns every item's version per id (to compare replicas).
func checkReplicas(t *testing.T, tn *testNode, acked map[string]want) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	last := make([]uint64, tn.o.Shards)
	for id, w := range acked {
		s := ShardOf(id, tn.o.Shards)
		last[s] = max(last[s], w.seq)
	}
	for s, r := range tn.replicas {
		if err := r.WaitApplied(ctx, last[s]); err != nil {
			t.Fatalf("%s shard %d stuck at %d of %d: %v (replica error: %v)", tn.o.NodeName, s, r.Applied(), last[s], err, r.Err())
		}
	}
	for id, w := range acked {
		it, err := tn.replicas[ShardOf(id, tn.o.Shards)].Collection().Get(id)
		switch {
		case w.deleted && !errors.Is(err, index.ErrNotFound):
			t.Errorf("%s: %s was deleted (acknowledged) but reads %v", tn.o.NodeName, id, err)
		case !w.deleted && err != nil:
			t.Errorf("%s: acknowledged %s is missing: %v", tn.o.NodeName, id, err)
		case !w.deleted && string(it.Metadata) != w.meta:
			t.Errorf("%s: %s metadata %s, want %s", tn.o.NodeName, id, it.Metadata, w.meta)
		}
	}
	versions := map[string]uint64{}
	for _, r := range tn.replicas {
		for cursor := ""; ; {
			items, next, err := r.Collection().List(cursor, 500)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range items {
				versions[fmt.Sprintf("%d/%s", r.Shard(), it.ID)] = it.Version
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	return versions
}

// Three embedded JetStream servers on loopback form a cluster; writes go through every node; the
// node leading the stream is stopped mid-ingest. Every acknowledged write is on every surviving
// node's replicas, with the same item versions on each; the stopped node restarts, catches up from
// the log and agrees too.
func TestClusterStopLeaderMidIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three NATS servers")
	}
	names := []string{"n1", "n2", "n3"}
	nodes := startCluster(t, names, 4)
	ctx := context.Background()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	leader, err := nodes[0].node.LogLeader(lctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	victim := -1
	for i, tn := range nodes {
		if tn.o.NodeName == leader {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("leader %q is none of %v", leader, names)
	}
	const perWriter = 90
	var mu sync.Mutex
	acked := map[string]want{}
	stops := make([]chan struct{}, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, tn := range nodes {
		stops[i] = make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = writer(ctx, tn.node, tn.o.NodeName, perWriter, stops[i], &mu, acked)
		}()
	}
	// Stop the leader once a third of the writes are in.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= perWriter {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stops[victim])
	stopped := time.Now()
	if err := nodes[victim].node.Close(); err != nil {
		t.Fatalf("stop %s: %v", leader, err)
	}
	wg.Wait()
	t.Logf("stopped leader %s after %d acknowledged writes; the others finished %v later", leader, perWriter, time.Since(stopped))
	for i, err := range errs {
		if i != victim && err != nil {
			t.Fatalf("writer through %s: %v", names[i], err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if errs[victim] != nil {
		t.Logf("writer through the stopped node: %v", errs[victim])
	}
	var ref map[string]uint64
	for i, tn := range nodes {
		if i == victim {
			continue
		}
		v := checkReplicas(t, tn, acked)
		if ref != nil && !sameVersions(ref, v) {
			t.Fatalf("%s's replicas differ from the other survivor's (%d vs %d items)", tn.o.NodeName, len(v), len(ref))
		}
		ref = v
	}
	// Any survivor answers a search of the whole collection from the survivors' replicas.
	for id, w := range acked {
		if w.deleted {
			continue
		}
		var res SearchResult
		var err error
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if res, err = nodes[(victim+1)%3].node.Search(ctx, "products", Query{Vector: vecOf(id), K: 3}, time.Second); err == nil && res.Shards == res.Of {
				break
			}
		}
		if err != nil || res.Shards != 4 || len(res.Results) == 0 || res.Results[0].ID != id {
			t.Fatalf("search for %s through a survivor: %+v, %v", id, res, err)
		}
		break
	}
	restarted := time.Now()
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	if err := nodes[victim].start(t, rctx); err != nil {
		t.Fatalf("restart %s: %v", leader, err)
	}
	if v := checkReplicas(t, nodes[victim], acked); !sameVersions(ref, v) {
		t.Fatalf("restarted %s differs from the survivors (%d vs %d items)", leader, len(v), len(ref))
	}
	t.Logf("%d acknowledged items checked on 3 nodes; restart and catch-up took %v", len(acked), time.Since(restarted))

	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	var st Status
	for { // a restarted server answers without a leader until the stream has elected one
		if st, err = nodes[victim].node.Status(sctx); err != nil {
			t.Fatal(err)
		}
		if st.Log.Leader != "" || sctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.Log.Leader == "" || len(st.Log.Peers) != 2 || len(st.Replicas) != 4 || st.Log.LastSeq == 0 {
		t.Fatalf("status: %+v", st)
	}
	for _, rs := range st.Replicas {
		if rs.Applied == 0 || rs.Err != "" {
			t.Errorf("replica status %+v", rs)
		}
	}

	// A minority refuses writes: with two of three servers stopped, no write is acknowledged and
	// Publish says so (ErrUnavailable) when its budget ends.
	survivor := nodes[victim]
	closing := time.Now()
	for i, tn := range nodes {
		if i != victim {
			if err := tn.node.Close(); err != nil {
				t.Fatal(err)
			}
			tn.node = nil
		}
	}
	t.Logf("two nodes closed in %v", time.Since(closing))
	mctx, mcancel := context.WithTimeout(ctx, 3*time.Second)
	defer mcancel()
	defer func(began time.Time) { t.Logf("minority write refused in %v", time.Since(began)) }(time.Now())
	if _, err := survivor.node.Publish(mctx, "products", Mutation{Op: OpDelete, ID: "n1-1"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a write to a minority: %v, want ErrUnavailable", err)
	}
}

func sameVersions(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
