package index

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Scroll and Count: reading a collection by metadata filter rather than by similarity (exports,
// bulk edits, "how many items match"). Scroll walks the items bucket in id order inside one bbolt
// read transaction, so a page is a consistent view; Count answers from memory.

// DefaultScrollScan bounds the records one Scroll call examines when its options name no bound:
// a selective filter over a large collection then returns a short (even empty) page with a cursor
// rather than reading the whole collection in one call.
const DefaultScrollScan = 10_000

// ScrollOptions select one page of items in id order.
type ScrollOptions struct {
	// Cursor: the page starts after this id ("" = from the first item).
	Cursor string
	// Limit: items per page; <= 0 means 100, at most 10000.
	Limit int
	// Filter: only items whose metadata match it (nil = every item).
	Filter *Filter
	// WithVector: include each item's stored (normalised) vector.
	WithVector bool
	// MaxScan: records examined at most; <= 0 means DefaultScrollScan. Without a filter every
	// record examined is listed, so it never cuts an unfiltered page.
	MaxScan int
}

// Scroll returns the items after o.Cursor that match o.Filter, in id order, without thumbnails.
// next is the cursor of the following page ("" when the collection has been read to its end); a
// page may hold fewer than o.Limit items and still have a next cursor when o.MaxScan records were
// examined first.
func (c *Collection) Scroll(o ScrollOptions) (items []Item, next string, err error) {
	limit := o.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 10000)
	scan := o.MaxScan
	if scan <= 0 {
		scan = DefaultScrollScan
	}
	scan = max(scan, limit) // an unfiltered page is never cut short
	err = c.db.bolt.View(func(tx *bolt.Tx) error {
		b := c.bucket(tx)
		if b == nil {
			return fmt.Errorf("%w: collection %q", ErrNotFound, c.name)
		}
		cur := b.Bucket(bucketItems).Cursor()
		k, v := cur.Seek([]byte(o.Cursor))
		if k != nil && o.Cursor != "" && string(k) == o.Cursor {
			k, v = cur.Next()
		}
		scanned := 0
		var last []byte // the last id examined: everything up to it has been decided
		for ; k != nil; k, v = cur.Next() {
			if len(items) == limit || scanned == scan {
				next = string(last)
				break
			}
			scanned, last = scanned+1, k
			r, err := decodeRecordView(v)
			if err != nil {
				return fmt.Errorf("%w: item %q: %w", ErrStorage, k, err)
			}
			if o.Filter != nil && !o.Filter.Match(r.meta) {
				continue
			}
			it := Item{ID: string(k), ContentHash: string(r.hash), UpdatedAt: time.Unix(0, r.updatedAt).UTC(), Version: r.version}
			if len(r.meta) > 0 {
				it.Metadata = bytes.Clone(r.meta)
			}
			if o.WithVector {
				it.Vector = make([]float32, r.dims())
				r.vectorInto(it.Vector)
			}
			items = append(items, it)
		}
		return nil
	})
	return items, next, err
}

// Count returns how many items match f (nil = all), from memory: keyword filters count their
// postings, others test every item's metadata.
func (c *Collection) Count(f *Filter) (int, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if err := c.usable(); err != nil {
		return 0, err
	}
	if f == nil {
		return len(c.byID), nil
	}
	n := 0
	if set, ok := c.candidates(f); ok {
		for _, s := range set {
			if f.match(&c.attrs[s]) {
				n++
			}
		}
		return n, nil
	}
	for s, id := range c.ids {
		if id != "" && f.match(&c.attrs[s]) {
			n++
		}
	}
	return n, nil
}
