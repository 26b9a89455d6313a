package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lookalike/lookalike/index"
)

// startPlaced starts the nodes of opts concurrently, each serving "products" through the
// placement (no replica opened by hand).
func startPlaced(t *testing.T, opts []Options) []*Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes := make([]*Node, len(opts))
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for i, o := range opts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if nodes[i], errs[i] = Start(ctx, o); errs[i] == nil {
				errs[i] = nodes[i].Serve("products", testCollection, &index.Options{NoSync: true, SnapshotInterval: -1})
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("cluster did not form: %v", err)
	}
	return nodes
}

// placed reports whether n holds exactly the replicas of want (the nodes of each shard),
// serving, and has read that assignment; extra lists shards it holds beyond it.
func placed(n *Node, want [][]string) (ok bool, extra []int) {
	a := n.CurrentAssignment("products")
	if a == nil || !slices.EqualFunc(a.Shards, want, slices.Equal) {
		return false, nil
	}
	ok = true
	for s, holders := range want {
		r := n.Replica("products", s)
		mine := slices.Contains(holders, n.Name())
		switch {
		case mine && (r == nil || !r.serving()):
			ok = false
		case !mine && r != nil:
			extra = append(extra, s)
		}
	}
	return ok, extra
}

// waitPlaced waits until every node holds its assigned replicas (and, with exact, no others).
func waitPlaced(t *testing.T, nodes []*Node, names []string, shards, rf int, exact bool, within time.Duration) {
	t.Helper()
	want := Assign(names, shards, rf)
	deadline := time.Now().Add(within)
	for {
		done := true
		for _, n := range nodes {
			ok, extra := placed(n, want)
			done = done && ok && (!exact || len(extra) == 0)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			for _, n := range nodes {
				ok, extra := placed(n, want)
				t.Logf("%s: placed %v, extra %v, assignment %+v", n.Name(), ok, extra, n.CurrentAssignment("products"))
			}
			t.Fatalf("placement over %v (rf %d, exact %v) not reached within %v", names, rf, exact, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPlacement: three nodes serving a 4-shard collection with replication factor 2 place the
// shards as Assign does; every item reads from every node (its own replica or another's);
// min_seq reads and searches see a write made through another node; with one node stopped every
// shard is still served, and after the grace period the two others hold every shard; when the
// node returns, the placement goes back and the extra replicas close once the returning node
// serves its shards and Linger passed.
func TestPlacement(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	const shards = 4
	opts := clusterOptions(t, names, shards)
	for i := range opts {
		opts[i].Grace, opts[i].Linger, opts[i].PlaceEvery = 3*time.Second, 2*time.Second, 200*time.Millisecond
	}
	nodes := startPlaced(t, opts)
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	waitPlaced(t, nodes, names, shards, 2, true, 30*time.Second)
	ctx := context.Background()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := nodes[0].WaitServed(wctx, "products"); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := range 40 {
		id := fmt.Sprintf("p%02d", i)
		seq, err := nodes[i%3].Publish(ctx, "products", Mutation{Op: OpUpsert, ID: id, Vector: vecOf(id), Metadata: []byte(`{"i":` + fmt.Sprint(i) + `}`),
			Thumbnail: []byte("thumb-" + id)})
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, seq)
	}
	// Read-your-writes across nodes: min_seq = the last write's sequence, which belongs to one
	// shard only; the others confirm their horizon against the log.
	for _, n := range nodes {
		res, err := n.Search(ctx, "products", Query{Vector: vecOf("p00"), K: 100, MinSeq: last}, 2*time.Second)
		if err != nil || len(res.Results) != 40 || res.Shards != shards {
			t.Fatalf("search on %s with min_seq %d: %d results, %d/%d shards, %v", n.Name(), last, len(res.Results), res.Shards, res.Of, err)
		}
		for i := range 40 {
			id := fmt.Sprintf("p%02d", i)
			it, err := n.Item(ctx, "products", id, ReadOptions{MinSeq: last, Thumbnail: true})
			if err != nil || len(it.Vector) != testDims || string(it.Thumbnail) != "thumb-"+id || len(it.Source) != 0 || it.Version == 0 {
				t.Fatalf("read %s on %s: %+v %v", id, n.Name(), it, err)
			}
		}
	}
	if _, err := nodes[2].Item(ctx, "products", "nope", ReadOptions{}); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("missing item: %v", err)
	}
	start := time.Now()
	if _, err := nodes[2].Item(ctx, "products", "p01", ReadOptions{MinSeq: last + 1000}); !errors.Is(err, ErrNotCaughtUp) {
		t.Errorf("read beyond the log: %v", err)
	}
	if d := time.Since(start); d < MinSeqWait-time.Second || d > MinSeqWait+3*time.Second {
		t.Errorf("read beyond the log answered after %v, want about %v", d, MinSeqWait)
	}

	// One node down: every shard still has a replica; after the grace period the two others
	// hold every shard.
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	res, err := nodes[0].Search(ctx, "products", Query{Vector: vecOf("p00"), K: 100}, 2*time.Second)
	if err != nil || len(res.Results) != 40 || res.Shards != shards {
		t.Fatalf("search with a node down: %d results, %d/%d shards, %v", len(res.Results), res.Shards, res.Of, err)
	}
	waitPlaced(t, nodes[:2], names[:2], shards, 2, true, 20*time.Second)

	// It returns: the placement goes back to three nodes, the extra replicas close.
	nodes[2] = startPlaced(t, opts[2:])[0]
	waitPlaced(t, nodes, names, shards, 2, true, 30*time.Second)
	for i := range 40 {
		id := fmt.Sprintf("p%02d", i)
		if it, err := nodes[2].Item(ctx, "products", id, ReadOptions{}); err != nil || it.ID != id {
			t.Fatalf("read %s on the returned node: %v", id, err)
		}
	}
}
