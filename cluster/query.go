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
	// ExcludeIDs are left out by every shard before its top K is cut (a similar search's item,
	// a recommendation's examples, a client's exclude_ids).
	ExcludeIDs []string `json:"exclude_ids,omitempty"`
	// Exact asks every shard for a brute-force search.
	Exact bool `json:"exact,omitempty"`
	// MinSeq: answer only from replicas that applied their shard up to this stream sequence
	// (read-your-writes: the seq a write returned), waiting up to MinSeqWait; else
	// ErrNotCaughtUp.
	MinSeq uint64 `json:"min_seq,omitempty"`
	// WaitMS is set by Search: how long a replica may wait for MinSeq.
	WaitMS int64 `json:"wait_ms,omitempty"`
}

// MinSeqWait bounds how long a read waits for replicas to reach its min_seq.
const MinSeqWait = 5 * time.Second

// SearchResult is the merged answer and how much of the collection it covers: Shards of Of
// shards answered in time. Partial results are results, not an error.
type SearchResult struct {
	Results []index.Result
	Shards  int
	Of      int
}

type shardAnswer struct {
	Results []index.Result `json:"results,omitempty"`
	shardStatus
}

// shardStatus is what every shard answer of a scatter carries besides its data: the replica's
// applied sequence, and why it refused the request.
type shardStatus struct {
	Applied     uint64 `json:"applied"`
	Error       string `json:"error,omitempty"`
	NotCaughtUp bool   `json:"not_caught_up,omitempty"`
}

// err is the refusal as an error: ErrNotCaughtUp, or ErrInvalidQuery with the shard's reason.
func (a shardStatus) err() error {
	switch {
	case a.NotCaughtUp:
		return fmt.Errorf("%w: %s", ErrNotCaughtUp, a.Error)
	case a.Error != "":
		return fmt.Errorf("%w: %s", ErrInvalidQuery, a.Error)
	}
	return nil
}

// scatter sends req to one replica of every shard of collection (subject names each shard's
// queue group) and returns each shard's reply; nil where none came within timeout.
func (n *Node) scatter(ctx context.Context, collection string, subject func(string, int) string, req []byte, timeout time.Duration) [][]byte {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	replies := make([][]byte, n.o.Shards)
	var wg sync.WaitGroup
	for s := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, err := n.nc.RequestWithContext(ctx, subject(collection, s), req)
			if err == nil {
				replies[s] = msg.Data // no replica, or none in time: counted as missing
			}
		}()
	}
	wg.Wait()
	return replies
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
	if q.MinSeq > 0 {
		q.WaitMS = MinSeqWait.Milliseconds()
		timeout += MinSeqWait
	}
	req, err := json.Marshal(q)
	if err != nil {
		return SearchResult{}, fmt.Errorf("%w: %v", ErrInvalidQuery, err)
	}
	replies := n.scatter(ctx, collection, querySubject, req, timeout)
	answers := make([]*shardAnswer, len(replies))
	for s, data := range replies {
		var a shardAnswer
		if data != nil && json.Unmarshal(data, &a) == nil {
			answers[s] = &a
		}
	}
	out := SearchResult{Of: n.o.Shards}
	for _, a := range answers {
		if a == nil {
			continue
		}
		if err := a.err(); err != nil {
			return SearchResult{}, err
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
// It answers item reads (item.go) and listings (list.go) from then on too.
func (r *Replica) join() {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	if r.subs != nil || r.left {
		return
	}
	var subs []*nats.Subscription
	for subj, h := range map[string]nats.MsgHandler{querySubject(r.collection, r.shard): r.answer,
		itemSubject(r.collection, r.shard): r.answerItem, listSubject(r.collection, r.shard): r.answerList} {
		sub, err := r.n.nc.QueueSubscribe(subj, subj, h)
		if err != nil {
			r.log.Warn("replica cannot join its query group", "err", err)
			for _, s := range subs {
				s.Unsubscribe()
			}
			return
		}
		subs = append(subs, sub)
	}
	r.subs = subs
	r.log.Info("replica serves searches", "applied", r.Applied())
}

// serving: the replica answers its shard's searches and reads.
func (r *Replica) serving() bool {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	return r.subs != nil
}

// leave stops answering searches for good (the replica is closing, or cannot catch up).
func (r *Replica) leave() {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	r.left = true
	for _, s := range r.subs {
		s.Unsubscribe()
	}
	r.subs = nil
}

// async answers m in its own goroutine when it must wait for minSeq (so the replica's other
// requests are not held up behind it), else at once.
func (r *Replica) async(minSeq uint64, answer func()) {
	if r.caughtUp(minSeq) {
		answer()
		return
	}
	r.reqs.Add(1)
	go func() {
		defer r.reqs.Done()
		answer()
	}()
}

// waitFor waits up to waitMS for minSeq (see WaitCaughtUp).
func (r *Replica) waitFor(minSeq uint64, waitMS int64) error {
	if r.caughtUp(minSeq) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(min(waitMS, MinSeqWait.Milliseconds()))*time.Millisecond)
	defer cancel()
	return r.WaitCaughtUp(ctx, minSeq)
}

// answer serves one search request of the shard. Requests of one replica are answered one at a
// time (one subscription); the replicas of a shard share the load.
func (r *Replica) answer(m *nats.Msg) {
	var q Query
	if err := json.Unmarshal(m.Data, &q); err != nil {
		r.answerSearch(m, q, err)
		return
	}
	r.async(q.MinSeq, func() { r.answerSearch(m, q, nil) })
}

func (r *Replica) answerSearch(m *nats.Msg, q Query, err error) {
	var a shardAnswer
	if err == nil {
		if werr := r.waitFor(q.MinSeq, q.WaitMS); werr != nil {
			if errors.Is(werr, ErrClosed) {
				return
			}
			a.NotCaughtUp, a.Error = true, reason(werr, ErrNotCaughtUp)
			r.respond(m, a)
			return
		}
	}
	var f *index.Filter
	if err == nil && q.Filter != "" {
		f, err = index.ParseFilter(q.Filter)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		a.Results, err = r.col.Search(ctx, q.Vector, index.SearchOptions{K: q.K, Ef: q.Ef, Filter: f, ExcludeIDs: q.ExcludeIDs, Exact: q.Exact})
		cancel()
	}
	a.Applied = r.Applied()
	if err != nil {
		if errors.Is(err, index.ErrClosed) {
			return // closing: let another replica (or the timeout) answer
		}
		a.Error = err.Error()
	}
	r.respond(m, a)
}

func (r *Replica) respond(m *nats.Msg, a any) {
	data, err := json.Marshal(a)
	if err == nil {
		err = m.Respond(data)
	}
	if err != nil {
		r.log.Debug("answer not sent", "err", err)
	}
}
