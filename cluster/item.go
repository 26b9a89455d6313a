package cluster

// Reads of one item from any node: from this node's replica of the item's shard when it has a
// serving one, else over request/reply from a replica that has (lk.item.<collection>.<shard>, a
// queue group per shard, joined with the query group once the replica caught up).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lookalike/lookalike/index"
)

func itemSubject(collection string, shard int) string {
	return "lk.item." + collection + "." + strconv.Itoa(shard)
}

// ReadOptions qualify an item read.
type ReadOptions struct {
	// MinSeq: read from a replica that applied the item's shard up to this stream sequence,
	// waiting up to MinSeqWait (else ErrNotCaughtUp).
	MinSeq uint64
	// Thumbnail and Source: also return the item's renditions (left out otherwise: a read of
	// metadata need not carry them over the network).
	Thumbnail, Source bool
}

type itemRequest struct {
	ID        string `json:"id"`
	MinSeq    uint64 `json:"min_seq,omitempty"`
	WaitMS    int64  `json:"wait_ms,omitempty"`
	Thumbnail bool   `json:"thumbnail,omitempty"`
	Source    bool   `json:"source,omitempty"`
}

type itemAnswer struct {
	Item        *index.Item `json:"item,omitempty"`
	Thumbnail   []byte      `json:"thumbnail,omitempty"`
	Source      []byte      `json:"source,omitempty"`
	Applied     uint64      `json:"applied"`
	NotFound    bool        `json:"not_found,omitempty"`
	NotCaughtUp bool        `json:"not_caught_up,omitempty"`
	Error       string      `json:"error,omitempty"`
}

// Item reads item id of collection from a replica of its shard: index.ErrNotFound when absent,
// ErrUnavailable when no replica of the shard answers in time, ErrNotCaughtUp when o.MinSeq is
// not reached in time.
func (n *Node) Item(ctx context.Context, collection, id string, o ReadOptions) (index.Item, error) {
	if err := validCollection(collection); err != nil {
		return index.Item{}, err
	}
	shard := ShardOf(id, n.o.Shards)
	req := itemRequest{ID: id, MinSeq: o.MinSeq, Thumbnail: o.Thumbnail, Source: o.Source}
	if req.MinSeq > 0 {
		req.WaitMS = MinSeqWait.Milliseconds()
	}
	var a itemAnswer
	answered := false
	if r := n.Replica(collection, shard); r != nil && r.serving() {
		a = r.readItem(req)
		answered = a.Error != ErrClosed.Error()
	}
	if !answered {
		// No serving replica here (or it closed meanwhile): ask the shard's item group.
		var err error
		if a, err = n.remoteItem(ctx, collection, shard, req); err != nil {
			return index.Item{}, err
		}
	}
	switch {
	case a.NotCaughtUp:
		return index.Item{}, fmt.Errorf("%w: %s", ErrNotCaughtUp, a.Error)
	case a.NotFound:
		return index.Item{}, fmt.Errorf("%w: item %q in %q", index.ErrNotFound, id, collection)
	case a.Error != "" || a.Item == nil:
		return index.Item{}, fmt.Errorf("%w: item read: %s", ErrUnavailable, a.Error)
	}
	it := *a.Item
	it.Thumbnail, it.Source = a.Thumbnail, a.Source
	return it, nil
}

// remoteItem asks a replica of shard (on any node) for req.
func (n *Node) remoteItem(ctx context.Context, collection string, shard int, req itemRequest) (itemAnswer, error) {
	var a itemAnswer
	data, err := json.Marshal(req)
	if err != nil {
		return a, err
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second+time.Duration(req.WaitMS)*time.Millisecond)
	defer cancel()
	msg, err := n.nc.RequestWithContext(rctx, itemSubject(collection, shard), data)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) {
			return a, fmt.Errorf("%w: no replica of shard %d of %q answered: %v", ErrUnavailable, shard, collection, err)
		}
		return a, fmt.Errorf("%w: item read: %v", ErrUnavailable, err)
	}
	if err := json.Unmarshal(msg.Data, &a); err != nil {
		return a, fmt.Errorf("item read: %w", err)
	}
	return a, nil
}

// answerItem serves one item read of the shard.
func (r *Replica) answerItem(m *nats.Msg) {
	var req itemRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		r.respond(m, itemAnswer{Error: err.Error()})
		return
	}
	r.async(req.MinSeq, func() {
		a := r.readItem(req)
		if a.Error == ErrClosed.Error() {
			return // closing: let another replica (or the timeout) answer
		}
		r.respond(m, a)
	})
}

// readItem reads from this replica, after waiting for req.MinSeq.
func (r *Replica) readItem(req itemRequest) itemAnswer {
	if err := r.waitFor(req.MinSeq, req.WaitMS); err != nil {
		if errors.Is(err, ErrClosed) {
			return itemAnswer{Error: ErrClosed.Error()}
		}
		return itemAnswer{NotCaughtUp: true, Error: reason(err, ErrNotCaughtUp), Applied: r.Applied()}
	}
	a := itemAnswer{Applied: r.Applied()}
	it, err := r.col.Get(req.ID)
	switch {
	case errors.Is(err, index.ErrNotFound) && !errors.Is(err, index.ErrStorage):
		a.NotFound = true
	case errors.Is(err, index.ErrClosed):
		a.Error = ErrClosed.Error()
	case err != nil:
		a.Error = err.Error()
	default:
		if req.Thumbnail {
			a.Thumbnail = it.Thumbnail
		}
		if req.Source {
			a.Source = it.Source
		}
		it.Thumbnail, it.Source = nil, nil
		a.Item = &it
	}
	return a
}

// WaitWrite waits (within ctx) until a replica of the shard of item id applied the write that
// Publish acknowledged with seq, so that the write is visible when the caller answers.
// While no replica of the shard serves (the placement is moving it) it asks again every 100 ms.
func (n *Node) WaitWrite(ctx context.Context, collection, id string, seq uint64) error {
	for {
		_, err := n.Item(ctx, collection, id, ReadOptions{MinSeq: seq})
		if err == nil || errors.Is(err, index.ErrNotFound) {
			return nil // applied (a delete, or a write refused when applied, reads as absent)
		}
		if !errors.Is(err, ErrUnavailable) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
