package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The trash keeps deleted items for a while so that a deletion made while reviewing duplicates can
// be undone. A trashed item leaves the graph, the id maps and the items bucket exactly like a
// deleted one (its id is free again), and its record and thumbnail move to the collection's trash
// bucket in the same transaction, with the time of deletion. Restoring writes them back as a new
// version of the item, removing the trash entry in the same transaction. Nothing purges the trash
// on its own: the owner calls PurgeTrash with its retention window.

var bucketTrash = []byte("trash")

// TrashEntry describes one trashed item.
type TrashEntry struct {
	ID           string          `json:"id"`
	Metadata     json.RawMessage `json:"metadata,omitempty"`
	DeletedAt    time.Time       `json:"deleted_at"`
	HasThumbnail bool            `json:"has_thumbnail"`
}

// Trash encoding, version 2: 0x02 | deletedAt varint (unix ns) | len+record (the items bucket's
// value) | len+thumbnail | source rendition. Version 1 (before source renditions) ends with the
// thumbnail: 0x01 | deletedAt | len+record | thumbnail.
const trashVersion = 2

func appendTrash(dst []byte, at time.Time, rec, thumb, source []byte) []byte {
	dst = append(dst, trashVersion)
	dst = binary.AppendVarint(dst, at.UnixNano())
	dst = binary.AppendUvarint(dst, uint64(len(rec)))
	dst = append(dst, rec...)
	dst = binary.AppendUvarint(dst, uint64(len(thumb)))
	dst = append(dst, thumb...)
	return append(dst, source...)
}

// decodeTrash splits an entry; the slices alias b.
func decodeTrash(b []byte) (at time.Time, rec, thumb, source []byte, err error) {
	if len(b) < 1 || (b[0] != 1 && b[0] != trashVersion) {
		return at, nil, nil, nil, errCorruptRecord
	}
	ts, n := binary.Varint(b[1:])
	if n <= 0 {
		return at, nil, nil, nil, errCorruptRecord
	}
	p := 1 + n
	field := func() ([]byte, bool) {
		l, m := binary.Uvarint(b[p:])
		if m <= 0 || l > uint64(len(b)-p-m) {
			return nil, false
		}
		p += m + int(l)
		return b[p-int(l) : p], true
	}
	rec, ok := field()
	if !ok {
		return at, nil, nil, nil, errCorruptRecord
	}
	if b[0] == 1 {
		return time.Unix(0, ts).UTC(), rec, b[p:], nil, nil
	}
	if thumb, ok = field(); !ok {
		return at, nil, nil, nil, errCorruptRecord
	}
	return time.Unix(0, ts).UTC(), rec, thumb, b[p:], nil
}

// Trash moves the items of ids that exist to the collection's trash (unknown ids are ignored) and
// returns the ids it moved. Durable when it returns; searches no longer see them.
func (c *Collection) Trash(ctx context.Context, ids ...string) ([]string, error) {
	now := time.Now()
	return c.remove(ctx, ids, func(b *bolt.Bucket, id string) error {
		tb, err := b.CreateBucketIfNotExists(bucketTrash)
		if err != nil {
			return err
		}
		rec := b.Bucket(bucketItems).Get([]byte(id))
		thumb := b.Bucket(bucketThumbs).Get([]byte(id))
		return tb.Put([]byte(id), appendTrash(nil, now, rec, thumb, getSource(b, id)))
	})
}

// RestoreFromTrash puts a trashed item back (vector, metadata, thumbnail, source, content hash) as a new
// version and removes it from the trash, in one transaction. ErrNotFound when id is not in the
// trash; ErrExists when an item with that id was added since (delete it first).
func (c *Collection) RestoreFromTrash(ctx context.Context, id string) (Written, error) {
	if err := c.mayWrite(ctx); err != nil {
		return Written{}, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.checkFrozen(ctx); err != nil {
		return Written{}, err
	}
	// Every writer holds wmu, so what memory says now stays true until the write below.
	if _, ok := c.Has(id); ok {
		return Written{}, fmt.Errorf("%w: item %q in %q was added again since it was trashed; delete it before restoring", ErrExists, id, c.name)
	}
	var it Item
	err := c.viewTrash(func(tb *bolt.Bucket) error {
		var v []byte
		if tb != nil {
			v = tb.Get([]byte(id))
		}
		if v == nil {
			return fmt.Errorf("%w: item %q is not in the trash of %q", ErrNotFound, id, c.name)
		}
		_, raw, thumb, source, err := decodeTrash(v)
		if err != nil {
			return fmt.Errorf("%w: trashed item %q: %w", ErrStorage, id, err)
		}
		r, err := decodeRecord(raw)
		if err != nil {
			return fmt.Errorf("%w: trashed item %q: %w", ErrStorage, id, err)
		}
		it = Item{ID: id, Vector: r.vec, ContentHash: r.hash, UpdatedAt: r.updatedAt, Thumbnail: bytes.Clone(thumb),
			Source: bytes.Clone(source)}
		if len(r.meta) > 0 {
			it.Metadata = r.meta
		}
		return nil
	})
	if err != nil {
		return Written{}, err
	}
	ps, _, err := c.prepareAll([]Item{it})
	if err != nil {
		return Written{}, err
	}
	err = c.putLocked(ps, func(b *bolt.Bucket) error {
		return b.Bucket(bucketTrash).Delete([]byte(id))
	})
	if err != nil {
		return Written{}, err
	}
	return Written{ID: id, Version: ps[0].version, Outcome: ps[0].outcome}, nil
}

// ListTrash returns up to limit trashed items with ids greater than cursor, in id order, and the
// cursor of the next page ("" at the end). limit <= 0 means 100; at most 10000.
func (c *Collection) ListTrash(cursor string, limit int) ([]TrashEntry, string, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 10000)
	out := []TrashEntry{}
	next := ""
	err := c.viewTrash(func(tb *bolt.Bucket) error {
		if tb == nil {
			return nil
		}
		cur := tb.Cursor()
		k, v := cur.Seek([]byte(cursor))
		if k != nil && cursor != "" && string(k) == cursor {
			k, v = cur.Next()
		}
		for ; k != nil; k, v = cur.Next() {
			if len(out) == limit {
				next = out[len(out)-1].ID
				break
			}
			at, raw, thumb, _, err := decodeTrash(v)
			if err != nil {
				return fmt.Errorf("%w: trashed item %q: %w", ErrStorage, k, err)
			}
			r, err := decodeRecordView(raw)
			if err != nil {
				return fmt.Errorf("%w: trashed item %q: %w", ErrStorage, k, err)
			}
			e := TrashEntry{ID: string(k), DeletedAt: at, HasThumbnail: len(thumb) > 0}
			if len(r.meta) > 0 {
				e.Metadata = bytes.Clone(r.meta)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, next, err
}

// PurgeTrash deletes for good the trashed items deleted before cutoff and returns how many.
// Entries that cannot be decoded are purged too: nothing could restore them.
func (c *Collection) PurgeTrash(ctx context.Context, cutoff time.Time) (int, error) {
	if err := c.mayWrite(ctx); err != nil {
		return 0, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// A read first: most calls find nothing to purge and need no write transaction.
	var old [][]byte
	err := c.viewTrash(func(tb *bolt.Bucket) error {
		if tb == nil {
			return nil
		}
		return tb.ForEach(func(k, v []byte) error {
			if at, _, _, _, err := decodeTrash(v); err != nil || at.Before(cutoff) {
				old = append(old, bytes.Clone(k))
			}
			return nil
		})
	})
	if err != nil || len(old) == 0 {
		return 0, err
	}
	err = c.inBucket(func(b *bolt.Bucket) error {
		tb := b.Bucket(bucketTrash)
		for _, k := range old {
			if err := tb.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, storageErr("purge the trash of "+c.name, err)
	}
	return len(old), nil
}

// viewTrash runs fn in a read transaction with the collection's trash bucket (nil when nothing was
// ever trashed).
func (c *Collection) viewTrash(fn func(tb *bolt.Bucket) error) error {
	return c.db.bolt.View(func(tx *bolt.Tx) error {
		b := c.bucket(tx)
		if b == nil {
			return fmt.Errorf("%w: collection %q", ErrNotFound, c.name)
		}
		return fn(b.Bucket(bucketTrash))
	})
}

// mayWrite says whether a write may start: a writable, open collection and a live context.
func (c *Collection) mayWrite(ctx context.Context) error {
	if err := c.writable(); err != nil {
		return err
	}
	c.mu.RLock()
	err := c.usable()
	c.mu.RUnlock()
	if err != nil {
		return err
	}
	return ctx.Err()
}
