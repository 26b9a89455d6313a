package cluster

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestMutationRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123, time.UTC)
	cases := []Mutation{
		{Op: OpUpsert, ID: "sku-1", UpdatedAt: at, Vector: []float32{0.5, -1, 3e-9}, Metadata: []byte(`{"a":1}`),
			Thumbnail: []byte{0xff, 0xd8}, Source: bytes.Repeat([]byte{7}, 1000), ContentHash: "abc"},
		{Op: OpMetaEdit, ID: "é/☃", IfVersion: 42, Metadata: []byte(`{"a":null}`)},
		{Op: OpDelete, ID: "x"},
	}
	for _, m := range cases {
		b, err := m.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeMutation(b)
		if err != nil {
			t.Fatalf("%s: %v", m.Op, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: got %+v, want %+v", m.Op, got, m)
		}
	}
	for _, bad := range []Mutation{{Op: 0, ID: "a"}, {Op: 9, ID: "a"}, {Op: OpDelete}} {
		if _, err := bad.AppendBinary(nil); !errors.Is(err, ErrInvalidMutation) {
			t.Errorf("%+v encoded: %v", bad, err)
		}
	}
	good, _ := cases[0].AppendBinary(nil)
	for name, b := range map[string][]byte{
		"empty": nil, "other format": append([]byte{2}, good[1:]...), "cut": good[:len(good)-3],
		"trailing": append(bytes.Clone(good), 0), "unknown op": append([]byte{1, 7}, good[2:]...),
	} {
		if _, err := DecodeMutation(b); !errors.Is(err, ErrInvalidMutation) {
			t.Errorf("%s decoded: %v", name, err)
		}
	}
}

// FuzzDecodeMutation: no input panics, and whatever decodes encodes back to the same bytes.
func FuzzDecodeMutation(f *testing.F) {
	for _, m := range []Mutation{
		{Op: OpUpsert, ID: "a", Vector: []float32{1, 2}, Metadata: []byte(`{}`), Thumbnail: []byte{1}},
		{Op: OpMetaEdit, ID: "b", IfVersion: 3, Metadata: []byte(`{"x":1}`)},
		{Op: OpDelete, ID: "c", UpdatedAt: time.Unix(5, 0)},
	} {
		b, _ := m.AppendBinary(nil)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMutation(b)
		if err != nil {
			return
		}
		again, err := m.AppendBinary(nil)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes:\n%x\n%x", b, again)
		}
	})
}

func TestShardsAndAssignment(t *testing.T) {
	if ShardOf("sku-1", 16) != ShardOf("sku-1", 16) || ShardOf("x", 1) != 0 {
		t.Fatal("ShardOf is not a function of the id")
	}
	counts := make([]int, 16)
	for i := 0; i < 16000; i++ {
		counts[ShardOf(string(rune('a'+i%26))+time.Duration(i).String(), 16)]++
	}
	for s, n := range counts {
		if n < 700 || n > 1300 {
			t.Errorf("shard %d got %d of 16000 ids", s, n)
		}
	}
	nodes := []string{"n1", "n2", "n3"}
	a := Assign(nodes, 16, 2)
	per := map[string]int{}
	for s, rs := range a {
		if len(rs) != 2 || rs[0] == rs[1] {
			t.Fatalf("shard %d: %v", s, rs)
		}
		for _, n := range rs {
			per[n]++
		}
	}
	for _, n := range nodes {
		if per[n] < 6 {
			t.Errorf("node %s holds %d of 32 replicas", n, per[n])
		}
	}
	// Removing a node moves only the replicas it held.
	b := Assign(nodes[:2], 16, 2)
	for s := range a {
		for _, n := range a[s] {
			if n != "n3" && !slices.Contains(b[s], n) {
				t.Errorf("shard %d lost replica %s when n3 left", s, n)
			}
		}
	}
	// Few shards still spread: FNV-1a without mixing ranked n2, n3 first for all 4 shards.
	for _, names := range [][]string{nodes, {"n1", "n2", "n3", "n4", "n5"}, {"node-a", "node-b", "node-c"}} {
		per := map[string]int{}
		for _, rs := range Assign(names, 4, 2) {
			for _, n := range rs {
				per[n]++
			}
		}
		if len(per) < min(len(names), 4) {
			t.Errorf("4 shards over %v: replicas per node %v", names, per)
		}
	}
	if got := Assign(nodes, 4, 5); len(got[0]) != 3 {
		t.Errorf("rf above the node count: %v", got[0])
	}
}
