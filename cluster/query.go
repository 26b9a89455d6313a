package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lookalike/lookalike/index"
)

// Scatter-gather: every replica answers searches of its shard on lk.q.<collection>.<shard> in a
// queue group named after the subject, so one replica of each shard answers each request and the
// replicas of a shard share the load. Node.Search asks every shard and merges the global top k.

// querySubject is the request subject (and queue group) of one shard.
func querySubject(collection string, shard int) string {
	return "lk.q." + collection + "." + strconv.Itoa(shard)
}

// Query is a search of a whole collection.
type Query struct {
	Vector []float32 `json:"vector"`
	K      int       `json:"k"`
	Ef     int       `json:"ef,omitempty"`
	// Filter is a metadata filter expression (index.ParseFilter).
	Filter string `json:"filter,omitempty"`
}

// SearchResult is the merged answer and how much of the collection it covers: Shards of Of
// shards answered in time. Partial results are results, not an error.
type SearchResult struct {
	Results []index.Result
	Shards  int
	Of      int
}

type shardAnswer struct {
	Results []index.Result `json:"results,omitempty"`
	Applied uint64         `json:"applied"`
	Error   string         `json:"error,omitempty"`
}

// Search asks one replica of every shard of collection for its top q.K and merges them. A shard
// that does not answer within timeout is left out and counted in the coverage; when none answers
// it returns ErrUnavailable. A query a shard refuses (a vector of other dims, a bad filter) is
// ErrInvalidQuery with the shard's reason.
func (n *Node) Search(ctx context.Context, collection string, q Query, timeout time.Duration) (SearchResult, error) {
	if err := validCollection(collection); err != nil {
		return SearchResult{}, err
	}
	if q.K < 1 || q.K > index.MaxK {
		return SearchResult{}, fmt.Errorf("%w: k must be in 1..%d", ErrInvalidQuery, index.MaxK)
	}
	req, err := json.Marshal(q)
	if err != nil {
		return SearchResult{}, fmt.Errorf("%w: %v", ErrInvalidQuery, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	answers := make([]*shardAnswer, n.o.Shards)
	var wg sync.WaitGroup
	for s := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, err := n.nc.RequestWithContext(ctx, querySubject(collection, s), req)
			if err != nil {
				return // no replica, or none in time: counted as missing
			}
			var a shardAnswer
			if json.Unmarshal(msg.Data, &a) == nil {
				answers[s] = &a
			}
		}()
	}
	wg.Wait()
	out := SearchResult{Of: n.o.Shards}
	for _, a := range answers {
		if a == nil {
			continue
		}
		if a.Error != "" {
			return SearchResult{}, fmt.Errorf("%w: %s", ErrInvalidQuery, a.Error)
		}
		out.Shards++
		out.Results = append(out.Results, a.Results...)
	}
	if out.Shards == 0 {
		return out, fmt.Errorf("%w: no shard of %q answered within %v", ErrUnavailable, collection, timeout)
	}
	slices.SortFunc(out.Results, func(a, b index.Result) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if len(out.Results) > q.K {
		out.Results = out.Results[:q.K]
	}
	return out, nil
}

// join makes the replica answer its shard's searches; called once it has caught up with the log.
func (r *Replica) join() {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	if r.sub != nil || r.left {
		return
	}
	subj := querySubject(r.collection, r.shard)
	sub, err := r.n.nc.QueueSubscribe(subj, subj, r.answer)
	if err != nil {
		r.log.Warn("replica cannot join its query group", "err", err)
		return
	}
	r.sub = sub
	r.log.Info("replica serves searches", "applied", r.Applied())
}

// leave stops answering searches for good (the replica is closing, or cannot catch up).
func (r *Replica) leave() {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	r.left = true
	if r.sub != nil {
		r.sub.Unsubscribe()
		r.sub = nil
	}
}

// answer serves one search request of the shard. Requests of one replica are answered one at a
// time (one subscription); the replicas of a shard share the load.
func (r *Replica) answer(m *nats.Msg) {
	var q Query
	var a shardAnswer
	err := json.Unmarshal(m.Data, &q)
	var f *index.Filter
	if err == nil && q.Filter != "" {
		f, err = index.ParseFilter(q.Filter)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		a.Results, err = r.col.Search(ctx, q.Vector, index.SearchOptions{K: q.K, Ef: q.Ef, Filter: f})
		cancel()
	}
	a.Applied = r.Applied()
	if err != nil {
		if errors.Is(err, index.ErrClosed) {
			return // closing: let another replica (or the timeout) answer
		}
		a.Error = err.Error()
	}
	data, err := json.Marshal(a)
	if err == nil {
		err = m.Respond(data)
	}
	if err != nil {
		r.log.Debug("search answer not sent", "err", err)
	}
}
