package index

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// chunkKeys lists the snapshot chunk keys of collection "a".
func chunkKeys(t *testing.T, db *bolt.DB) [][]byte {
	t.Helper()
	var keys [][]byte
	db.View(func(tx *bolt.Tx) error {
		if cb := tx.Bucket(bucketCollections).Bucket([]byte("a")).Bucket(bucketChunks); cb != nil {
			cb.ForEach(func(k, _ []byte) error {
				keys = append(keys, bytes.Clone(k))
				return nil
			})
		}
		return nil
	})
	return keys
}

// TestSnapshotChunks: a snapshot written in many chunks (one transaction each) loads back; a new
// snapshot drops the previous generation; a damaged or missing chunk, or a head naming chunks that
// are not there, means a rebuild; the older one-value format (LKG1) still loads.
func TestSnapshotChunks(t *testing.T) {
	old := snapChunk
	snapChunk = 1000
	t.Cleanup(func() { snapChunk = old })
	dir := t.TempDir()
	o := &Options{NoSync: true, SnapshotInterval: -1, ExactThreshold: -1, EfConstruction: 32}
	db, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := db.CreateCollection("a", CollectionConfig{Fingerprint: "f", Dims: 16})
	vecs := synth.Clustered(700, 16, 4, 1, 31)
	upsertAll(t, c, mkItems(vecs, "i", nil), 350)
	if err := db.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first := chunkKeys(t, db.bolt)
	if len(first) < 50 {
		t.Fatalf("%d chunks", len(first))
	}
	c.Upsert(ctx, Item{ID: "extra", Vector: vecs[0]})
	db.Close() // snapshots again: a new generation replaces the first

	reopen := func(from string) *Collection {
		t.Helper()
		db, err := Open(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := db.Collection("a")
		if c.loadedFrom != from {
			t.Fatalf("loaded from %s, want %s", c.loadedFrom, from)
		}
		if res, err := c.Search(ctx, vecs[5], SearchOptions{K: 1}); err != nil || res[0].ID != "i00005" {
			t.Fatalf("search after load from %s: %v %+v", from, err, res)
		}
		if r := reachable(c.g); r != c.g.count || c.g.count != 701 {
			t.Fatalf("%d of %d reachable", r, c.g.count)
		}
		return c
	}
	c = reopen("snapshot")
	second := chunkKeys(t, c.db.bolt)
	for _, k := range second { // only the current generation is left
		if bytes.Equal(k[:4], first[0][:4]) || !bytes.Equal(k[:4], second[0][:4]) {
			t.Fatalf("chunk %x left beside generation %x", k, second[0][:4])
		}
	}
	c.db.Close()

	damage := func(fn func(b *bolt.Bucket, cb *bolt.Bucket) error) {
		t.Helper()
		b, err := bolt.Open(dir+"/"+FileName, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucketCollections).Bucket([]byte("a"))
			return fn(bk, bk.Bucket(bucketChunks))
		}); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	// The stream of the current snapshot, to rebuild the older format from it.
	var stream []byte
	b, _ := bolt.Open(dir+"/"+FileName, 0o600, nil)
	b.View(func(tx *bolt.Tx) error {
		tx.Bucket(bucketCollections).Bucket([]byte("a")).Bucket(bucketChunks).ForEach(func(_, v []byte) error {
			stream = append(stream, v...)
			return nil
		})
		return nil
	})
	b.Close()

	damage(func(_, cb *bolt.Bucket) error { // a flipped bit in a middle chunk
		k := second[len(second)/2]
		v := bytes.Clone(cb.Get(k))
		v[len(v)/2] ^= 1
		return cb.Put(k, v)
	})
	reopen("rebuild").db.Close()            // Close writes a good snapshot again
	damage(func(_, cb *bolt.Bucket) error { // a missing chunk
		k, _ := cb.Cursor().Last()
		return cb.Delete(k)
	})
	reopen("rebuild").db.Close()
	damage(func(bk, _ *bolt.Bucket) error { // the head of the older format, with a stream of its own
		v := append([]byte("LKG1"), stream...)
		v = binary.LittleEndian.AppendUint32(v, crc32.Checksum(v, crcTable))
		seq := binary.LittleEndian.Uint64(stream)
		if err := bk.Put(keySeq, binary.BigEndian.AppendUint64(nil, seq)); err != nil {
			return err
		}
		return bk.Put(keyGraph, v)
	})
	reopen("snapshot").db.Close()
}

// FuzzParseSnapHead: the head of a stored snapshot is refused when damaged, never a panic, and an
// accepted one of the current format marshals back to the same bytes.
func FuzzParseSnapHead(f *testing.F) {
	f.Add(snapHead{seq: 7, gen: 2, chunks: 3, length: 20000, sum: 99}.marshal())
	v1 := append([]byte("LKG1"), make([]byte, 40)...)
	f.Add(binary.LittleEndian.AppendUint32(v1, crc32.Checksum(v1, crcTable)))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok := parseSnapHead(b)
		if ok && h.v1 == nil && !bytes.Equal(h.marshal(), b) {
			t.Fatalf("head %+v marshals to other bytes", h)
		}
	})
}
