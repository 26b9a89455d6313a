package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/edit"
)

// Replica is one shard of one collection held by this node: an index.DB of its own that follows
// the shard's subject of the log. Reads go to Collection; writes go to Node.Publish, never here.
type Replica struct {
	n          *Node
	collection string
	shard      int
	subject    string
	log        *slog.Logger
	dir        string
	cfg        index.CollectionConfig
	dbOpts     index.Options
	// db and col change only when a snapshot is installed (snapshot.go), under applyMu and
	// storeMu, while the replica does not serve: the query handlers read col without a lock.
	db      *index.DB
	col     *index.Collection
	storeMu sync.RWMutex
	// applyMu is held while a message is applied, a snapshot copied or installed.
	applyMu sync.Mutex

	applied atomic.Uint64
	// horizon: every message of the shard at or below it is applied (confirmed against the log
	// by WaitCaughtUp).
	horizon atomic.Uint64
	// pending is how many messages of the shard the consumer reported still to deliver (after
	// the last message applied, or at the last quiet check).
	pending atomic.Uint64
	waitMu  sync.Mutex
	waitCh  chan struct{} // closed and replaced after every applied message

	errMu   sync.Mutex
	lastErr error

	subMu sync.Mutex
	subs  []*nats.Subscription // the shard's query and item groups, joined once caught up (query.go)
	left  bool
	reqs  sync.WaitGroup // requests answered in their own goroutine (a min_seq wait)

	cancel context.CancelFunc
	done   chan struct{}
	snapWG sync.WaitGroup // the snapshot loop
}

// OpenReplica opens (creating when missing) this node's replica of shard of collection under
// Dir/replicas/<collection>/<shard> and starts applying the log from its applied position + 1
// (a replica without data first installs its shard's newest snapshot, when there is one).
// cfg is the collection's config (fingerprint, dims); dbOpts the index's (nil = defaults, the
// node's logger). The node closes the replica on Close.
func (n *Node) OpenReplica(collection string, shard int, cfg index.CollectionConfig, dbOpts *index.Options) (*Replica, error) {
	if err := validCollection(collection); err != nil {
		return nil, err
	}
	if shard < 0 || shard >= n.o.Shards {
		return nil, fmt.Errorf("%w: shard %d of %d", ErrConfig, shard, n.o.Shards)
	}
	name := collection + "/" + strconv.Itoa(shard)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	if _, ok := n.replicas[name]; ok {
		return nil, fmt.Errorf("%w: replica %s is already open", ErrConfig, name)
	}
	o := index.Options{Logger: n.log}
	if dbOpts != nil {
		o = *dbOpts
	}
	dir := filepath.Join(n.o.Dir, "replicas", collection, strconv.Itoa(shard))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("replica %s: %w", name, err)
	}
	db, err := index.Open(dir, &o)
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", name, err)
	}
	col, err := db.OpenCollection(collection, cfg)
	var applied uint64
	if err == nil {
		applied, err = col.AppliedSeq(StreamName)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("replica %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Replica{n: n, collection: collection, shard: shard, subject: Subject(collection, shard),
		log: n.log.With("replica", name), dir: dir, cfg: cfg, dbOpts: o, db: db, col: col, waitCh: make(chan struct{}),
		cancel: cancel, done: make(chan struct{})}
	r.applied.Store(applied)
	n.replicas[name] = r
	go r.run(ctx)
	if n.o.SnapshotInterval > 0 {
		r.snapWG.Add(1)
		go func() {
			defer r.snapWG.Done()
			r.snapshotLoop(ctx, n.o.SnapshotInterval)
		}()
	}
	return r, nil
}

// Collection is the replica's local collection, for reads.
func (r *Replica) Collection() *index.Collection {
	r.storeMu.RLock()
	defer r.storeMu.RUnlock()
	return r.col
}

// Shard is the replica's shard number.
func (r *Replica) Shard() int { return r.shard }

// Applied is the stream sequence of the last message of this shard applied here.
func (r *Replica) Applied() uint64 { return r.applied.Load() }

// Pending is how many messages of the shard the replica's consumer last reported it still had to
// deliver: the replica's backlog.
func (r *Replica) Pending() uint64 { return r.pending.Load() }

// Err is the error that last stopped the replica from following the log (it retries, except after
// ErrTruncated), nil while it follows.
func (r *Replica) Err() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.lastErr
}

// WaitApplied waits until the replica has applied stream sequence seq (a write to this shard that
// Publish acknowledged with seq): read-your-writes.
func (r *Replica) WaitApplied(ctx context.Context, seq uint64) error {
	for {
		r.waitMu.Lock()
		ch := r.waitCh
		r.waitMu.Unlock()
		if r.applied.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-r.done:
			return fmt.Errorf("%w: replica of %s", ErrClosed, r.subject)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitCaughtUp waits until the replica has applied every message of its shard up to stream
// sequence seq, which may belong to any shard (a client's min_seq). It returns at once when the
// replica applied seq or later, or confirmed a horizon at or above it; otherwise it checks
// against the log's leader (confirm) every 100 ms until ctx ends: then ErrNotCaughtUp.
func (r *Replica) WaitCaughtUp(ctx context.Context, seq uint64) error {
	var next time.Time
	for {
		r.waitMu.Lock()
		ch := r.waitCh
		r.waitMu.Unlock()
		if r.caughtUp(seq) {
			return nil
		}
		if time.Now().After(next) {
			if r.confirm(ctx, seq) {
				return nil
			}
			next = time.Now().Add(100 * time.Millisecond)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ch:
		case <-t.C:
		case <-r.done:
			t.Stop()
			return fmt.Errorf("%w: replica of %s", ErrClosed, r.subject)
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: the replica of %s on %s has not applied its shard up to %d in time (applied %d)", ErrNotCaughtUp, r.subject, r.n.o.NodeName, seq, r.Applied())
		}
		t.Stop()
	}
}

func (r *Replica) caughtUp(seq uint64) bool {
	return r.applied.Load() >= seq || r.horizon.Load() >= seq
}

// confirm checks whether every message of the shard up to seq is applied. The stream's leader
// reports its last sequence L (≥ seq), then the last message of the shard's subject: when that
// one is applied here (or the subject has none), so is every message of the shard up to L, which
// all existed before the second question. Both answers come from the stream's leader: a
// consumer's own view (its pending count) can come from a follower whose copy lags.
func (r *Replica) confirm(ctx context.Context, seq uint64) bool {
	ictx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := r.n.js.Stream(ictx, StreamName)
	if err != nil {
		return false
	}
	info := st.CachedInfo()
	if (info.Cluster != nil && info.Cluster.Leader == "") || info.State.LastSeq < seq {
		return false
	}
	if info.Config.AllowDirect {
		return false // direct gets may be answered by a lagging follower: not a proof
	}
	last, err := st.GetLastMsgForSubject(ictx, r.subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil || last.Sequence > r.Applied():
		return false
	}
	for h := r.horizon.Load(); h < info.State.LastSeq && !r.horizon.CompareAndSwap(h, info.State.LastSeq); h = r.horizon.Load() {
	}
	return true
}

func (r *Replica) setErr(err error) {
	r.errMu.Lock()
	r.lastErr = err
	r.errMu.Unlock()
}

// run follows the log until the replica is closed; after a failure it starts again from the
// applied position a second later. A replica without data starts from its shard's newest
// snapshot; one whose next message the log no longer holds (ErrTruncated) leaves its shard's
// groups and installs a newer snapshot, or, without one, stays out and looks again every 30 s.
func (r *Replica) run(ctx context.Context) {
	defer close(r.done)
	if r.Applied() == 0 {
		if _, err := r.restore(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("no snapshot installed: the replica catches up from the log alone", "err", err)
		}
	}
	for ctx.Err() == nil {
		err := r.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := time.Second
		if errors.Is(err, ErrTruncated) {
			r.leave()
			ok, rerr := r.restore(ctx)
			if ok {
				r.rejoin()
				continue
			}
			err = errors.Join(err, rerr)
			wait = truncatedRetry
			r.log.Error("replica out of service: the log lacks its next message and no newer snapshot is installed", "err", err)
		} else {
			r.log.Warn("replica restarts following the log", "err", err, "applied", r.Applied())
		}
		r.setErr(err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// follow consumes the shard's subject from applied+1 and applies each message until ctx ends, a
// message cannot be applied, or the consumer is lost or skips (run then starts again).
func (r *Replica) follow(ctx context.Context) error {
	start := r.Applied() + 1
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, err := r.n.js.Stream(ictx, StreamName)
	cancel()
	if err != nil {
		return fmt.Errorf("stream info: %w", err)
	}
	info := st.CachedInfo()
	if info.Cluster != nil && info.Cluster.Leader == "" {
		// A server that has just restarted answers from its own, possibly stale copy until the
		// stream has a leader: judge the replica's position only against the leader's state.
		return errors.New("the log has no leader yet")
	}
	state := info.State
	switch {
	case start > state.LastSeq+1:
		return fmt.Errorf("%w: replica applied up to %d but the log ends at %d (was the stream recreated?)", ErrTruncated, start-1, state.LastSeq)
	case start < state.FirstSeq && start <= state.LastSeq:
		return fmt.Errorf("%w: replica needs %d, the log starts at %d", ErrTruncated, start, state.FirstSeq)
	}
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	cons, err := r.n.js.CreateConsumer(cctx, StreamName, jetstream.ConsumerConfig{
		FilterSubject: r.subject, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start,
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, Replicas: 1, InactiveThreshold: 30 * time.Second,
		Description: "replica " + r.subject + " on " + r.n.o.NodeName})
	ccancel()
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	msgs := make(chan jetstream.Msg, 64)
	failed := make(chan error, 1)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-fctx.Done():
		}
	}, jetstream.PullExpiry(4*time.Second), jetstream.PullHeartbeat(time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			r.log.Debug("consumer", "err", err)
			if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
				errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConnectionClosed) {
				select {
				case failed <- err:
				default:
				}
			}
		}))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()
	r.setErr(nil)
	if info := cons.CachedInfo(); info != nil {
		r.pending.Store(info.NumPending)
		if info.NumPending == 0 {
			r.join()
		}
	}
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	lastMsg := time.Now()
	var delivered uint64 // the consumer's own sequence: 1, 2, 3... without a gap
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return fmt.Errorf("consumer lost: %w", err)
		case m := <-msgs:
			lastMsg = time.Now()
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("message metadata: %w", err)
			}
			if md.Sequence.Consumer != delivered+1 {
				return fmt.Errorf("consumer delivered #%d after #%d", md.Sequence.Consumer, delivered)
			}
			delivered++
			if err := r.apply(ctx, md.Sequence.Stream, m.Data()); err != nil {
				return err
			}
			r.pending.Store(md.NumPending)
			if md.NumPending == 0 {
				r.join() // caught up
			}
		case <-tick.C:
			if time.Since(lastMsg) < watchEvery {
				continue
			}
			if err := watch(ctx, cons); err != nil {
				return err
			}
		}
	}
}

// watchEvery is how often a quiet replica checks that its consumer still exists.
const watchEvery = 2 * time.Second

// watch checks that a quiet replica's consumer still exists and has nothing pending it does not
// deliver (its server may have died without the heartbeats saying so yet); otherwise the replica
// starts again from its applied position.
func watch(ctx context.Context, cons jetstream.Consumer) error {
	ictx, cancel := context.WithTimeout(ctx, watchEvery)
	defer cancel()
	info, err := cons.Info(ictx)
	switch {
	case ctx.Err() != nil:
		return nil
	case err != nil:
		return fmt.Errorf("consumer lost: %w", err)
	case info.NumPending > 0:
		return fmt.Errorf("consumer stalled with %d messages pending", info.NumPending)
	}
	return nil
}

// errRefused marks a message that changes nothing on any replica (a failed precondition, an
// absent item, an invalid item or patch): its position is recorded and the log moves on.
var errRefused = errors.New("refused")

// apply applies the message at stream sequence seq in its own bbolt transaction.
func (r *Replica) apply(ctx context.Context, seq uint64, data []byte) error {
	if seq <= r.Applied() {
		return nil
	}
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	mut, err := DecodeMutation(data)
	if err == nil {
		err = r.write(ctx, seq, mut)
	}
	if err != nil {
		if !refused(err) {
			return fmt.Errorf("apply %s seq %d: %w", r.subject, seq, err)
		}
		r.log.Warn("log message changes nothing", "seq", seq, "id", mut.ID, "op", mut.Op, "why", err)
		if err := r.col.MarkApplied(ctx, StreamName, seq); err != nil {
			return fmt.Errorf("apply %s seq %d: %w", r.subject, seq, err)
		}
	}
	r.setApplied(seq)
	return nil
}

// setApplied records the replica's new position and wakes its waiters.
func (r *Replica) setApplied(seq uint64) {
	r.applied.Store(seq)
	r.waitMu.Lock()
	close(r.waitCh)
	r.waitCh = make(chan struct{})
	r.waitMu.Unlock()
}

func refused(err error) bool {
	return errors.Is(err, errRefused) || errors.Is(err, ErrInvalidMutation) || errors.Is(err, index.ErrInvalidItem) ||
		errors.Is(err, index.ErrVersionConflict) || (errors.Is(err, index.ErrNotFound) && !errors.Is(err, index.ErrStorage))
}

// write applies mut through the index's write path with its log position.
func (r *Replica) write(ctx context.Context, seq uint64, mut Mutation) error {
	switch mut.Op {
	case OpUpsert:
		_, err := r.col.PutApplied(ctx, StreamName, seq, index.Item{ID: mut.ID, Vector: mut.Vector, Metadata: mut.Metadata,
			Thumbnail: mut.Thumbnail, Source: mut.Source, ContentHash: mut.ContentHash, UpdatedAt: mut.UpdatedAt, IfVersion: mut.IfVersion})
		return err
	case OpMetaEdit:
		_, err := r.col.UpdateApplied(ctx, StreamName, seq, mut.ID, func(it *index.Item) error {
			if mut.IfVersion != 0 && it.Version != mut.IfVersion {
				return fmt.Errorf("%w: item at version %d, expected %d", index.ErrVersionConflict, it.Version, mut.IfVersion)
			}
			meta, err := edit.PatchMetadata(it.Metadata, mut.Metadata, edit.Options{})
			if err != nil {
				return fmt.Errorf("%w: %v", errRefused, err)
			}
			it.Metadata, it.UpdatedAt = meta, mut.UpdatedAt
			return nil
		})
		return err
	case OpDelete:
		if mut.IfVersion != 0 {
			// The replica is its collection's only writer: nothing lands between this read and the delete.
			it, err := r.col.Get(mut.ID)
			if err != nil {
				return err
			}
			if it.Version != mut.IfVersion {
				return fmt.Errorf("%w: item at version %d, expected %d", index.ErrVersionConflict, it.Version, mut.IfVersion)
			}
		}
		_, err := r.col.DeleteApplied(ctx, StreamName, seq, mut.ID)
		return err
	}
	return fmt.Errorf("%w: op %s", ErrInvalidMutation, mut.Op)
}

// close stops following the log and closes the replica's store.
func (r *Replica) close() error {
	r.leave()
	r.cancel()
	<-r.done
	r.snapWG.Wait()
	r.leave() // again: a restore may have allowed a rejoin meanwhile
	r.reqs.Wait()
	r.n.mu.Lock()
	delete(r.n.replicas, r.collection+"/"+strconv.Itoa(r.shard))
	r.n.mu.Unlock()
	return r.db.Close()
}

// Close stops the replica and closes its store; the node keeps running.
func (r *Replica) Close() error { return r.close() }
