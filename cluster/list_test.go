package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lookalike/lookalike/index"
)

// mergePages merges shard pages in id order and never lets a page step past an id some shard has
// not decided yet (its page was cut by its limit or its scan bound).
func TestMergePages(t *testing.T) {
	page := func(next string, ids ...string) listAnswer {
		a := listAnswer{Next: next}
		for _, id := range ids {
			a.Items = append(a.Items, index.Item{ID: id})
		}
		return a
	}
	for _, tc := range []struct {
		name     string
		answers  []listAnswer
		limit    int
		want     string
		wantNext string
	}{
		{"both read to the end", []listAnswer{page("", "b", "d"), page("", "a")}, 5, "a b d", ""},
		{"more than the limit", []listAnswer{page("e", "a", "c", "e"), page("", "b", "d")}, 3, "a b c", "c"},
		{"a shard cut by its limit bounds the page", []listAnswer{page("c", "a", "c"), page("", "d", "f")}, 2, "a c", "c"},
		{"a filtered shard cut by its scan bound with nothing", []listAnswer{page("m"), page("y", "b", "x", "y")}, 3, "b", "m"},
		{"exactly the limit, all read", []listAnswer{page("", "a"), page("", "b")}, 2, "a b", ""},
		{"nothing", []listAnswer{page(""), page("")}, 2, "", ""},
	} {
		items, next := mergePages(tc.answers, tc.limit)
		var ids []string
		for _, it := range items {
			ids = append(ids, it.ID)
		}
		if got := strings.Join(ids, " "); got != tc.want || next != tc.wantNext {
			t.Errorf("%s: %q next %q, want %q next %q", tc.name, got, next, tc.want, tc.wantNext)
		}
	}
}

// checkList pages through products (ids p0..p<total-1>, metadata even: i%2 == 0) from n, counts
// it, filtered and not, and checks what a bad listing answers. TestScatterGather calls it.
func checkList(t *testing.T, n *Node, total int) {
	t.Helper()
	ctx := context.Background()
	var want []string
	for i := range total {
		want = append(want, fmt.Sprintf("p%d", i))
	}
	slices.Sort(want)
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		res, err := n.List(ctx, "products", ListQuery{Cursor: cursor, Limit: 7}, time.Second)
		if err != nil || res.Shards != 2 || len(res.Items) > 7 || pages > total {
			t.Fatalf("page %d after %q: %+v %v", pages, cursor, res, err)
		}
		for _, it := range res.Items {
			got = append(got, it.ID)
		}
		if res.Next == "" {
			break
		}
		cursor = res.Next
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages listed\n%v\nwant\n%v", got, want)
	}
	res, err := n.List(ctx, "products", ListQuery{Limit: 100, Filter: "even = true", WithVector: true}, time.Second)
	if err != nil || len(res.Items) != total/2 || res.Next != "" {
		t.Fatalf("filtered listing: %d items, next %q, %v", len(res.Items), res.Next, err)
	}
	for _, it := range res.Items {
		if string(it.Metadata) != `{"even":true}` || len(it.Vector) != testCollection.Dims {
			t.Fatalf("filtered listing: %s %s with %d dims", it.ID, it.Metadata, len(it.Vector))
		}
	}
	for filter, want := range map[string]int{"": total, "even = true": total / 2} {
		if res, err := n.List(ctx, "products", ListQuery{Count: true, Filter: filter}, time.Second); err != nil || res.Count != want || res.Shards != 2 {
			t.Errorf("count %q: %+v %v, want %d", filter, res, err, want)
		}
	}
	for name, q := range map[string]ListQuery{"bad filter": {Limit: 3, Filter: "even =="}, "limit 0": {}, "limit too large": {Limit: MaxListLimit + 1}} {
		if _, err := n.List(ctx, "products", q, time.Second); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("%s: %v, want ErrInvalidQuery", name, err)
		}
	}
}

// checkPartialList: with one of two shards gone, a listing and a count answer from the other
// with their coverage.
func checkPartialList(t *testing.T, n *Node, held int) {
	t.Helper()
	res, err := n.List(context.Background(), "products", ListQuery{Limit: 100}, 500*time.Millisecond)
	if err != nil || res.Shards != 1 || res.Of != 2 || len(res.Items) != held {
		t.Errorf("partial listing: %d items, %d of %d shards, %v (shard 0 holds %d)", len(res.Items), res.Shards, res.Of, err, held)
	}
	res, err = n.List(context.Background(), "products", ListQuery{Count: true}, 500*time.Millisecond)
	if err != nil || res.Shards != 1 || res.Count != held {
		t.Errorf("partial count: %+v %v (shard 0 holds %d)", res, err, held)
	}
}
