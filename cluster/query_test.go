package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lookalike/lookalike/index"
)

// Search scatters to every shard and merges the global top k; a shard without a replica leaves a
// partial answer with its coverage; no shard at all, or a bad query, is an error. Listings and
// counts (list.go) scatter the same way.
func TestScatterGather(t *testing.T) {
	ctx := context.Background()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	n, err := Start(sctx, Options{NodeName: "solo", ClientAddr: "127.0.0.1:0", Dir: t.TempDir(), Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var rs []*Replica
	for s := 0; s < 2; s++ {
		r, err := n.OpenReplica("products", s, testCollection, &index.Options{NoSync: true, SnapshotInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	last := make([]uint64, 2)
	perShard := make([]int, 2)
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("p%d", i)
		seq, err := n.Publish(ctx, "products", Mutation{Op: OpUpsert, ID: id, Vector: vecOf(id), Metadata: []byte(fmt.Sprintf(`{"even":%v}`, i%2 == 0))})
		if err != nil {
			t.Fatal(err)
		}
		s := ShardOf(id, 2)
		last[s], perShard[s] = seq, perShard[s]+1
	}
	for s, r := range rs {
		if err := r.WaitApplied(ctx, last[s]); err != nil {
			t.Fatal(err)
		}
	}
	if perShard[0] == 0 || perShard[1] == 0 {
		t.Fatalf("ids per shard %v: the test needs both", perShard)
	}
	// Replicas join their query group once caught up; give the subscription a moment.
	var res SearchResult
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err = n.Search(ctx, "products", Query{Vector: vecOf("p7"), K: 40}, time.Second)
		if err == nil && res.Shards == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || res.Shards != 2 || res.Of != 2 || len(res.Results) != 40 || res.Results[0].ID != "p7" {
		t.Fatalf("full search: %+v %v", res, err)
	}
	for i := 1; i < len(res.Results); i++ {
		if res.Results[i].Score > res.Results[i-1].Score {
			t.Fatalf("merged results out of order at %d", i)
		}
	}
	res, err = n.Search(ctx, "products", Query{Vector: vecOf("p7"), K: 5, Filter: "even = true"}, time.Second)
	if err != nil || len(res.Results) != 5 {
		t.Fatalf("filtered search: %+v %v", res, err)
	}
	for _, r := range res.Results {
		if string(r.Metadata) != `{"even":true}` {
			t.Fatalf("filter let %s through", r.Metadata)
		}
	}
	// Exclusions are applied by each shard before its top k is cut: still k results.
	res, err = n.Search(ctx, "products", Query{Vector: vecOf("p7"), K: 5, ExcludeIDs: []string{"p7", "p8", "nope"}, Exact: true}, time.Second)
	if err != nil || len(res.Results) != 5 {
		t.Fatalf("search with exclusions: %+v %v", res, err)
	}
	for _, r := range res.Results {
		if r.ID == "p7" || r.ID == "p8" {
			t.Fatalf("excluded %s returned", r.ID)
		}
	}
	for name, q := range map[string]Query{"bad filter": {Vector: vecOf("x"), K: 3, Filter: "even =="},
		"bad dims": {Vector: []float32{1}, K: 3}} {
		if _, err := n.Search(ctx, "products", q, time.Second); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("%s: %v, want ErrInvalidQuery", name, err)
		}
	}
	if _, err := n.Search(ctx, "products", Query{Vector: vecOf("x"), K: 0}, time.Second); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("k 0: %v", err)
	}

	checkList(t, n, 40)

	// Shard 1 gone: a partial answer from shard 0 with its coverage.
	if err := rs[1].Close(); err != nil {
		t.Fatal(err)
	}
	checkPartialList(t, n, perShard[0])
	res, err = n.Search(ctx, "products", Query{Vector: vecOf("p7"), K: 40}, 500*time.Millisecond)
	if err != nil || res.Shards != 1 || res.Of != 2 || len(res.Results) != perShard[0] {
		t.Fatalf("partial search: %d results, %d of %d shards, %v (shard 0 holds %d)", len(res.Results), res.Shards, res.Of, err, perShard[0])
	}
	if err := rs[0].Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Search(ctx, "products", Query{Vector: vecOf("p7"), K: 3}, 300*time.Millisecond); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("no shard: %v", err)
	}
}
