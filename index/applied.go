package index

import (
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Applied positions: a collection that replays an external, ordered log (package cluster's
// replicated mutation log) records how far it got in the same bbolt transaction as each change,
// so after a crash the change and the position are both there or both absent, and the log is
// resumed at position+1 without applying anything twice or skipping anything. A position is a
// number that only grows, named by a key (one per log the collection follows).

// bucketApplied maps a log's key to the last position applied from it (8 bytes, big endian).
var bucketApplied = []byte("applied")

// AppliedSeq returns the last position recorded under key, 0 when none.
func (c *Collection) AppliedSeq(key string) (uint64, error) {
	var seq uint64
	err := c.db.bolt.View(func(tx *bolt.Tx) error {
		b := c.bucket(tx)
		if b == nil {
			return fmt.Errorf("%w: collection %q", ErrNotFound, c.name)
		}
		seq = appliedSeq(b, key)
		return nil
	})
	return seq, err
}

func appliedSeq(b *bolt.Bucket, key string) uint64 {
	if ab := b.Bucket(bucketApplied); ab != nil {
		if v := ab.Get([]byte(key)); len(v) == 8 {
			return binary.BigEndian.Uint64(v)
		}
	}
	return 0
}

// setApplied records seq under key; a seq at or below the recorded one is ErrStaleApplied (the
// change it came with is not written either).
func setApplied(b *bolt.Bucket, key string, seq uint64) error {
	if cur := appliedSeq(b, key); seq <= cur {
		return fmt.Errorf("%w: %q position %d, already at %d", ErrStaleApplied, key, seq, cur)
	}
	ab, err := b.CreateBucketIfNotExists(bucketApplied)
	if err != nil {
		return err
	}
	return ab.Put([]byte(key), binary.BigEndian.AppendUint64(nil, seq))
}

// MarkApplied records position seq under key for a log entry that changes nothing here (a delete
// of an absent item, a write its precondition refused), so the log resumes after it.
func (c *Collection) MarkApplied(ctx context.Context, key string, seq uint64) error {
	if err := c.writable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := c.inBucket(func(b *bolt.Bucket) error {
		return setApplied(b, key, seq)
	})
	if err != nil {
		return storageErr("mark applied in "+c.name, err)
	}
	return nil
}

// PutApplied is Put that records position seq under key in the same transaction. When Put
// refuses the items (ErrInvalidItem, ErrVersionConflict) nothing is written, the position
// neither: the caller decides (MarkApplied to skip the entry).
func (c *Collection) PutApplied(ctx context.Context, key string, seq uint64, items ...Item) ([]Written, error) {
	return c.put(ctx, items, func(b *bolt.Bucket) error { return setApplied(b, key, seq) })
}

// DeleteApplied is Delete that records position seq under key in the same transaction, also when
// none of ids exists.
func (c *Collection) DeleteApplied(ctx context.Context, key string, seq uint64, ids ...string) (int, error) {
	marked := false
	found, err := c.remove(ctx, ids, func(b *bolt.Bucket, _ string) error {
		if marked {
			return nil
		}
		marked = true
		return setApplied(b, key, seq)
	})
	if err != nil {
		return 0, err
	}
	if len(found) == 0 {
		return 0, c.MarkApplied(ctx, key, seq)
	}
	return len(found), nil
}

// UpdateApplied is Update that records position seq under key in the same transaction. When fn
// fails or id is absent nothing is written, the position neither (see PutApplied).
func (c *Collection) UpdateApplied(ctx context.Context, key string, seq uint64, id string, fn func(*Item) error) (Written, error) {
	return c.update(ctx, id, fn, func(b *bolt.Bucket) error { return setApplied(b, key, seq) })
}
