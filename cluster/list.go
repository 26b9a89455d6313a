package cluster

// Listing and counting a whole collection from any node: like a search, a request to one replica
// of every shard (lk.list.<collection>.<shard>, a queue group per shard, joined with the query
// group once the replica caught up). Each shard lists its items after the cursor in id order;
// the pages merge in id order, and the next cursor is the last id of the merged page, or the
// smallest id up to which a shard decided when some shard's page was cut short by its scan bound.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lookalike/lookalike/index"
)

func listSubject(collection string, shard int) string {
	return "lk.list." + collection + "." + strconv.Itoa(shard)
}

// MaxListLimit bounds ListQuery.Limit (index.Collection.Scroll's own bound).
const MaxListLimit = 10000

// ListQuery is a listing (or a count) of a whole collection.
type ListQuery struct {
	// Cursor: list the items with ids after it ("" = from the first).
	Cursor string `json:"cursor,omitempty"`
	// Limit: items per page, 1..MaxListLimit (ignored by a count).
	Limit int `json:"limit,omitempty"`
	// Filter is a metadata filter expression (index.ParseFilter; "" = every item).
	Filter string `json:"filter,omitempty"`
	// WithVector: each item carries its stored vector.
	WithVector bool `json:"with_vector,omitempty"`
	// Count: count the matching items instead of listing them.
	Count bool `json:"count,omitempty"`
	// MinSeq: answer only from replicas that applied their shard up to it (see Query.MinSeq).
	MinSeq uint64 `json:"min_seq,omitempty"`
	// WaitMS is set by List: how long a replica may wait for MinSeq.
	WaitMS int64 `json:"wait_ms,omitempty"`
}

// ListResult is a merged page (or count) and how much of the collection it covers: Shards of Of
// shards answered in time. The items of a shard that did not answer are missing from the page,
// and a page after it does not return to them.
type ListResult struct {
	Items []index.Item
	// Next is the cursor of the following page ("" when every answering shard was read to its end).
	Next string
	// Count is the number of matching items (a count query).
	Count  int
	Shards int
	Of     int
}

type listAnswer struct {
	Items []index.Item `json:"items,omitempty"`
	Next  string       `json:"next,omitempty"`
	Count int          `json:"count"`
	shardStatus
}

// List asks one replica of every shard of collection for its page (or count) of q and merges
// them. A shard that does not answer within timeout is left out and counted in the coverage;
// when none answers it returns ErrUnavailable; a query a shard refuses is ErrInvalidQuery.
func (n *Node) List(ctx context.Context, collection string, q ListQuery, timeout time.Duration) (ListResult, error) {
	if err := validCollection(collection); err != nil {
		return ListResult{}, err
	}
	if !q.Count && (q.Limit < 1 || q.Limit > MaxListLimit) {
		return ListResult{}, fmt.Errorf("%w: limit must be in 1..%d", ErrInvalidQuery, MaxListLimit)
	}
	if q.MinSeq > 0 {
		q.WaitMS = MinSeqWait.Milliseconds()
		timeout += MinSeqWait
	}
	req, err := json.Marshal(q)
	if err != nil {
		return ListResult{}, fmt.Errorf("%w: %v", ErrInvalidQuery, err)
	}
	out := ListResult{Of: n.o.Shards}
	var answers []listAnswer
	for _, data := range n.scatter(ctx, collection, listSubject, req, timeout) {
		var a listAnswer
		if data == nil || json.Unmarshal(data, &a) != nil {
			continue
		}
		if err := a.err(); err != nil {
			return ListResult{}, err
		}
		out.Shards++
		out.Count += a.Count
		answers = append(answers, a)
	}
	if out.Shards == 0 {
		return out, fmt.Errorf("%w: no shard of %q answered within %v", ErrUnavailable, collection, timeout)
	}
	if !q.Count {
		out.Items, out.Next = mergePages(answers, q.Limit)
	}
	return out, nil
}

// mergePages merges the shards' pages in id order. A shard whose page ended with a cursor has
// decided every id up to it, and no further: the merged page stops at the smallest such cursor
// (bound), so that the next page misses nothing of that shard.
func mergePages(answers []listAnswer, limit int) ([]index.Item, string) {
	bound, bounded := "", false
	for _, a := range answers {
		if a.Next != "" && (!bounded || a.Next < bound) {
			bound, bounded = a.Next, true
		}
	}
	var items []index.Item
	for _, a := range answers {
		for _, it := range a.Items {
			if !bounded || it.ID <= bound {
				items = append(items, it)
			}
		}
	}
	slices.SortFunc(items, func(a, b index.Item) int { return cmp.Compare(a.ID, b.ID) })
	switch {
	case len(items) > limit:
		return items[:limit], items[limit-1].ID
	case bounded:
		return items, bound
	}
	return items, ""
}

// answerList serves one listing or count of the shard.
func (r *Replica) answerList(m *nats.Msg) {
	var q ListQuery
	if err := json.Unmarshal(m.Data, &q); err != nil {
		r.respond(m, listAnswer{shardStatus: shardStatus{Error: err.Error()}})
		return
	}
	r.async(q.MinSeq, func() {
		a, err := r.list(q)
		if errors.Is(err, ErrClosed) || errors.Is(err, index.ErrClosed) {
			return // closing: let another replica (or the timeout) answer
		}
		r.respond(m, a)
	})
}

// list reads one shard's page or count of q, after waiting for q.MinSeq; the returned error is
// only a closing replica's (the others travel in the answer).
func (r *Replica) list(q ListQuery) (listAnswer, error) {
	var a listAnswer
	if err := r.waitFor(q.MinSeq, q.WaitMS); err != nil {
		if errors.Is(err, ErrClosed) {
			return a, err
		}
		a.NotCaughtUp, a.Error, a.Applied = true, reason(err, ErrNotCaughtUp), r.Applied()
		return a, nil
	}
	var f *index.Filter
	var err error
	if q.Filter != "" {
		f, err = index.ParseFilter(q.Filter)
	}
	switch {
	case err != nil:
	case q.Count:
		a.Count, err = r.col.Count(f)
	default:
		a.Items, a.Next, err = r.col.Scroll(index.ScrollOptions{Cursor: q.Cursor, Limit: q.Limit, Filter: f, WithVector: q.WithVector})
	}
	a.Applied = r.Applied()
	if err != nil {
		if errors.Is(err, index.ErrClosed) {
			return a, err
		}
		a.Error = err.Error()
	}
	return a, nil
}
