package cluster

// Shard snapshots (docs/cluster.md, "Snapshots and catch-up"): a replica that serves writes a copy
// of its bbolt file into the Object Store bucket LK_SNAP every Options.SnapshotInterval, one object
// per (collection, shard), the stream sequence it holds in the object's metadata. A replica that
// opens with no data, or whose next message the log no longer holds, installs the newest snapshot
// of its shard and replays the log from its sequence + 1, so the log need not keep every message.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lookalike/lookalike/index"
)

// SnapshotBucket is the Object Store bucket of the shard snapshots.
const SnapshotBucket = "LK_SNAP"

// DefaultSnapshotInterval is how often the first assigned node of a shard snapshots it.
const DefaultSnapshotInterval = 10 * time.Minute

// truncatedRetry is how often a replica cut off by retention looks for a newer snapshot.
const truncatedRetry = 30 * time.Second

// Object metadata keys of a snapshot.
const (
	metaApplied = "applied_seq"
	metaNode    = "node"
)

// SnapshotInfo describes a shard snapshot stored in LK_SNAP.
type SnapshotInfo struct {
	Collection string
	Shard      int
	// Applied is the stream sequence of the last message of the shard the snapshot holds.
	Applied uint64
	Size    uint64
	Node    string // the node that took it
	Taken   time.Time
}

func snapshotName(collection string, shard int) string { return collection + "." + strconv.Itoa(shard) }

func snapshotInfo(collection string, shard int, oi *jetstream.ObjectInfo) (SnapshotInfo, error) {
	seq, err := strconv.ParseUint(oi.Metadata[metaApplied], 10, 64)
	if err != nil || seq == 0 {
		return SnapshotInfo{}, fmt.Errorf("snapshot %s: no valid %s in its metadata (%q)", oi.Name, metaApplied, oi.Metadata[metaApplied])
	}
	return SnapshotInfo{Collection: collection, Shard: shard, Applied: seq, Size: oi.Size, Node: oi.Metadata[metaNode], Taken: oi.ModTime}, nil
}

// snapshots opens the snapshot bucket, creating it (replicated like the log) when create is
// set; without create a missing bucket is (nil, nil): no snapshot was ever taken.
func (n *Node) snapshots(ctx context.Context, create bool) (jetstream.ObjectStore, error) {
	n.snapMu.Lock()
	defer n.snapMu.Unlock()
	if n.snap != nil {
		return n.snap, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var obs jetstream.ObjectStore
	var err error
	if create {
		obs, err = n.js.CreateOrUpdateObjectStore(cctx, jetstream.ObjectStoreConfig{Bucket: SnapshotBucket,
			Description: "Lookalike shard snapshots (docs/cluster.md)", Storage: jetstream.FileStorage, Replicas: n.logReplicas()})
	} else {
		obs, err = n.js.ObjectStore(cctx, SnapshotBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", SnapshotBucket, err)
	}
	n.snap = obs
	return obs, nil
}

// LatestSnapshot describes the newest snapshot of shard of collection; nil when there is none.
func (n *Node) LatestSnapshot(ctx context.Context, collection string, shard int) (*SnapshotInfo, error) {
	obs, err := n.snapshots(ctx, false)
	if err != nil || obs == nil {
		return nil, err
	}
	oi, err := obs.GetInfo(ctx, snapshotName(collection, shard))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot of %s/%d: %w", collection, shard, err)
	}
	info, err := snapshotInfo(collection, shard, oi)
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// Snapshot stores a copy of the replica's store in LK_SNAP unless the stored one is as new. The
// copy is made to a local temporary file while the replica applies nothing (a bbolt read
// transaction at disk speed, so it never holds up the remap a growing file needs for long, and the
// recorded sequence is exactly the copy's); the upload then streams from that file while the
// replica goes on applying. A replica that applied nothing yet has nothing to store: Applied 0.
func (r *Replica) Snapshot(ctx context.Context) (SnapshotInfo, error) {
	r.applyMu.Lock()
	seq := r.Applied()
	var f *os.File
	var err error
	if seq > 0 {
		f, _, err = r.db.BackupFile()
	}
	r.applyMu.Unlock()
	if seq == 0 || err != nil {
		return SnapshotInfo{Collection: r.collection, Shard: r.shard}, err
	}
	defer f.Close()
	if cur, err := r.n.LatestSnapshot(ctx, r.collection, r.shard); err == nil && cur != nil && cur.Applied >= seq {
		return *cur, nil
	}
	obs, err := r.n.snapshots(ctx, true)
	if err != nil {
		return SnapshotInfo{}, err
	}
	oi, err := obs.Put(ctx, jetstream.ObjectMeta{Name: snapshotName(r.collection, r.shard),
		Description: "Lookalike shard snapshot (bbolt file)",
		Metadata:    map[string]string{metaApplied: strconv.FormatUint(seq, 10), metaNode: r.n.o.NodeName}}, f)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot of %s: %w", r.subject, err)
	}
	r.log.Info("shard snapshot stored", "applied", seq, "bytes", oi.Size)
	return snapshotInfo(r.collection, r.shard, oi)
}

// snapshotWriter: this node takes the shard's snapshots, being the first node the shard is
// assigned to (or, without a placement, whichever node holds a replica).
func (r *Replica) snapshotWriter() bool {
	a := r.n.CurrentAssignment(r.collection)
	if a == nil || r.shard >= len(a.Shards) || len(a.Shards[r.shard]) == 0 {
		return true
	}
	return a.Shards[r.shard][0] == r.n.o.NodeName
}

// snapshotLoop snapshots the replica every interval while it serves, until ctx ends. The first
// one comes after a random half to whole interval, so that the shards opened together do not
// all upload at once.
func (r *Replica) snapshotLoop(ctx context.Context, every time.Duration) {
	t := time.NewTimer(every/2 + rand.N(every/2+1))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			t.Reset(every)
		}
		if !r.serving() || !r.snapshotWriter() {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, max(every, time.Minute))
		if _, err := r.Snapshot(sctx); err != nil && ctx.Err() == nil {
			r.log.Warn("shard snapshot failed", "err", err)
		}
		cancel()
	}
}

// restore installs the newest snapshot of the shard when it is ahead of the replica: it downloads
// it beside the store (the Object Store checks its digest), opens it to check the collection and
// its position, then closes the store, renames the copy over it and reopens it. It reports whether
// it installed one. The replica applies nothing meanwhile (it runs in the replica's goroutine)
// and must not be serving.
func (r *Replica) restore(ctx context.Context) (bool, error) {
	obs, err := r.n.snapshots(ctx, false)
	if err != nil || obs == nil {
		return false, err
	}
	res, err := obs.Get(ctx, snapshotName(r.collection, r.shard))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("snapshot of %s: %w", r.subject, err)
	}
	defer res.Close()
	oi, err := res.Info()
	if err != nil {
		return false, fmt.Errorf("snapshot of %s: %w", r.subject, err)
	}
	info, err := snapshotInfo(r.collection, r.shard, oi)
	if err != nil || info.Applied <= r.Applied() {
		return false, err
	}
	start := time.Now()
	staging := filepath.Join(r.dir, ".restore")
	defer os.RemoveAll(staging)
	if err := r.download(res, staging, info.Applied); err != nil {
		return false, fmt.Errorf("snapshot of %s at %d: %w", r.subject, info.Applied, err)
	}
	if err := r.install(staging, info.Applied); err != nil {
		return false, fmt.Errorf("installing the snapshot of %s at %d: %w", r.subject, info.Applied, err)
	}
	r.log.Info("shard snapshot installed", "applied", info.Applied, "bytes", info.Size, "by", info.Node, "took", time.Since(start).Round(time.Millisecond))
	return true, nil
}

// download writes the snapshot into staging/FileName, synced, and checks that it opens as this
// collection at position want.
func (r *Replica) download(src io.Reader, staging string, want uint64) error {
	if err := os.RemoveAll(staging); err != nil {
		return err
	}
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(staging, index.FileName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, src) // a digest mismatch surfaces here, at the end of the object
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := index.CheckFile(filepath.Join(staging, index.FileName)); err != nil {
		return err
	}
	o := r.dbOpts
	o.SnapshotInterval = -1
	db, err := index.Open(staging, &o)
	if err != nil {
		return err
	}
	defer db.Close()
	col, err := db.OpenCollection(r.collection, r.cfg)
	if err != nil {
		return err
	}
	got, err := col.AppliedSeq(StreamName)
	if err == nil && got != want {
		err = fmt.Errorf("the copy holds position %d, its metadata says %d", got, want)
	}
	return err
}

// install replaces the replica's store with staging/FileName (a rename, atomic on one disk) and
// reopens it at position applied.
func (r *Replica) install(staging string, applied uint64) error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	if err := r.db.Close(); err != nil {
		return err
	}
	err := os.Rename(filepath.Join(staging, index.FileName), filepath.Join(r.dir, index.FileName))
	if d, derr := os.Open(r.dir); derr == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	// Reopen whichever file is there now (the old one when the rename failed): the replica
	// always keeps an open store.
	db, oerr := index.Open(r.dir, &r.dbOpts)
	if oerr != nil {
		return errors.Join(err, oerr)
	}
	col, oerr := db.OpenCollection(r.collection, r.cfg)
	if oerr != nil {
		db.Close()
		return errors.Join(err, oerr)
	}
	if err != nil {
		applied, _ = col.AppliedSeq(StreamName)
	}
	r.storeMu.Lock()
	r.db, r.col = db, col
	r.storeMu.Unlock()
	r.setApplied(applied)
	return err
}

// rejoin lets a replica that left its shard's groups (a truncated log) join them again once it
// caught up after a restore.
func (r *Replica) rejoin() {
	r.subMu.Lock()
	r.left = false
	r.subMu.Unlock()
}
