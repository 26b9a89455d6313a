package index

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ---- reads ----

// Vector returns a copy of an item's (normalised) vector: the cheap read for re-ranking and
// diversification, from memory (float storage) or one bbolt lookup (compressed).
func (c *Collection) Vector(id string) ([]float32, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	slot, err := c.slotLocked(id)
	if err != nil {
		return nil, err
	}
	return c.slotVector(slot)
}

// slotLocked finds a live item's slot in a usable collection. Under mu.RLock.
func (c *Collection) slotLocked(id string) (uint32, error) {
	if err := c.usable(); err != nil {
		return 0, err
	}
	slot, ok := c.byID[id]
	if !ok {
		return 0, fmt.Errorf("%w: item %q in %q", ErrNotFound, id, c.name)
	}
	return slot, nil
}

// Get returns an item with its vector, metadata, thumbnail and source rendition (copies).
func (c *Collection) Get(id string) (Item, error) {
	var it Item
	c.mu.RLock()
	err := c.usable()
	c.mu.RUnlock()
	if err != nil {
		return it, err
	}
	err = c.db.bolt.View(func(tx *bolt.Tx) error {
		b := c.bucket(tx)
		if b == nil {
			return fmt.Errorf("%w: collection %q", ErrNotFound, c.name)
		}
		v := b.Bucket(bucketItems).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: item %q in %q", ErrNotFound, id, c.name)
		}
		r, err := decodeRecord(v)
		if err != nil {
			return fmt.Errorf("%w: item %q: %w", ErrStorage, id, err)
		}
		it = Item{ID: id, Vector: r.vec, ContentHash: r.hash, UpdatedAt: r.updatedAt, Version: r.version}
		if len(r.meta) > 0 {
			it.Metadata = r.meta
		}
		if t := b.Bucket(bucketThumbs).Get([]byte(id)); t != nil {
			it.Thumbnail = bytes.Clone(t)
		}
		it.Source = bytes.Clone(getSource(b, id))
		return nil
	})
	return it, err
}

// Source returns the stored source rendition of an item (nil, nil when it has none).
func (c *Collection) Source(id string) ([]byte, error) {
	return c.itemBlob(id, getSource)
}

// getSource reads an item's source rendition inside a transaction (nil when none); the slice dies
// with the transaction.
func getSource(b *bolt.Bucket, id string) []byte {
	if sb := b.Bucket(bucketSources); sb != nil {
		return sb.Get([]byte(id))
	}
	return nil
}

// putSource stores (or, when empty, removes) an item's source rendition in a write transaction.
func putSource(b *bolt.Bucket, id string, src []byte) error {
	if len(src) == 0 {
		if sb := b.Bucket(bucketSources); sb != nil {
			return sb.Delete([]byte(id))
		}
		return nil
	}
	sb, err := b.CreateBucketIfNotExists(bucketSources)
	if err != nil {
		return err
	}
	return sb.Put([]byte(id), src)
}

// Has reports whether id exists and its content hash, from memory.
func (c *Collection) Has(id string) (contentHash string, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.byID[id]
	if !ok {
		return "", false
	}
	return c.hashes[s], true
}

// Thumbnail returns the stored thumbnail bytes (nil, nil when the item has none).
func (c *Collection) Thumbnail(id string) ([]byte, error) {
	return c.itemBlob(id, func(b *bolt.Bucket, id string) []byte { return b.Bucket(bucketThumbs).Get([]byte(id)) })
}

// itemBlob returns a copy of what get reads for an existing item in one read transaction
// (ErrNotFound when the collection or the item is missing).
func (c *Collection) itemBlob(id string, get func(b *bolt.Bucket, id string) []byte) ([]byte, error) {
	var out []byte
	err := c.db.bolt.View(func(tx *bolt.Tx) error {
		b := c.bucket(tx)
		if b == nil {
			return fmt.Errorf("%w: collection %q", ErrNotFound, c.name)
		}
		if b.Bucket(bucketItems).Get([]byte(id)) == nil {
			return fmt.Errorf("%w: item %q in %q", ErrNotFound, id, c.name)
		}
		out = bytes.Clone(get(b, id))
		return nil
	})
	return out, err
}

// List returns up to limit items (without vectors and thumbnails) with ids
// greater than cursor, in id order; next is the cursor for the following
// page, "" at the end. limit <= 0 means 100; at most 10000.
func (c *Collection) List(cursor string, limit int) ([]Item, string, error) {
	return c.Scroll(ScrollOptions{Cursor: cursor, Limit: limit})
}
