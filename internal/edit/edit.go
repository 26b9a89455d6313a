package edit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lookalike/lookalike/index"
)

// Options bound what an edit may produce.
type Options struct {
	// MaxMetadataBytes bounds the patched metadata; 0 means index.MaxMetadataLen.
	MaxMetadataBytes int
}

// Result is one item after Patch: as stored (without vector and thumbnail), and whether the patch
// changed it (a patch that changes nothing writes nothing and keeps the version).
type Result struct {
	Item    index.Item
	Changed bool
}

// errUnchanged and errSkip end an Update without writing.
var (
	errUnchanged = errors.New("edit: nothing to write")
	errSkip      = errors.New("edit: no longer selected")
)

// Patch applies the merge patch to the metadata of item id (patch "null" removes all of it). When
// ifVersion is not 0 the stored item must be at that version, else index.ErrVersionConflict and
// nothing is written. index.ErrNotFound when the item does not exist.
func Patch(ctx context.Context, col *index.Collection, id string, patch json.RawMessage, ifVersion uint64, o Options) (Result, error) {
	var res Result
	w, err := col.Update(ctx, id, func(it *index.Item) error {
		if ifVersion != 0 && it.Version != ifVersion {
			return fmt.Errorf("%w: item %q in %q is at version %d, expected %d", index.ErrVersionConflict, id, col.Name(), it.Version, ifVersion)
		}
		res.Item = index.Item{ID: it.ID, Metadata: it.Metadata, Version: it.Version, UpdatedAt: it.UpdatedAt}
		return apply(it, patch, o, &res.Item)
	})
	switch {
	case errors.Is(err, errUnchanged):
		return res, nil
	case err != nil:
		return Result{}, err
	}
	res.Item.Version, res.Changed = w.Version, true
	return res, nil
}

// apply patches it's metadata in place, noting the new state in after; errUnchanged when the
// patch changes nothing.
func apply(it *index.Item, patch json.RawMessage, o Options, after *index.Item) error {
	meta, err := PatchMetadata(it.Metadata, patch, o)
	if err != nil {
		return fmt.Errorf("item %q: %w", it.ID, err)
	}
	if bytes.Equal(meta, it.Metadata) {
		return errUnchanged
	}
	it.Metadata, it.UpdatedAt = meta, time.Now().UTC()
	after.Metadata, after.UpdatedAt = meta, it.UpdatedAt
	return nil
}

// PatchMetadata is the metadata object stored after patching stored with patch (nil for none):
// the patch must be an object or null, and the result within o's limits.
func PatchMetadata(stored, patch json.RawMessage, o Options) (json.RawMessage, error) {
	patch = bytes.Trim(patch, jsonSpace)
	if string(patch) == "null" {
		return nil, nil
	}
	if len(patch) == 0 || patch[0] != '{' {
		return nil, fmt.Errorf("%w: a metadata patch is a JSON object (or null to remove all metadata)", ErrInvalidPatch)
	}
	meta, err := MergePatch(stored, patch)
	if err != nil {
		return nil, err
	}
	if string(meta) == "{}" {
		meta = nil // no metadata is stored as none, as on add
	}
	limit := o.MaxMetadataBytes
	if limit <= 0 {
		limit = index.MaxMetadataLen
	}
	if len(meta) > limit {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(meta), limit)
	}
	if f := index.NonFiniteNumber(meta); f != "" {
		return nil, fmt.Errorf("%w: metadata field %q holds a number beyond the float64 range", ErrInvalidPatch, f)
	}
	return meta, nil
}

// Bulk limits: one call handles at most MaxBulk items (DefaultBulk when the selection names no
// limit).
const (
	MaxBulk     = 1000
	DefaultBulk = 100
)

// Selection is one page of the items a filter matches, in id order.
type Selection struct {
	Filter *index.Filter // required by callers that write: nil selects every item
	Cursor string        // start after this id (the previous report's NextCursor)
	Limit  int           // items at most; 0 means DefaultBulk, at most MaxBulk
	DryRun bool          // report what would be done, write nothing
}

// Report says what one bulk call did. IDs are the items written (updated or trashed), or in a
// dry run those that would be. NextCursor continues with the next page ("" when done).
type Report struct {
	Matched    int               `json:"matched"`
	Updated    int               `json:"updated,omitempty"`
	Unchanged  int               `json:"unchanged,omitempty"`
	Trashed    int               `json:"trashed,omitempty"`
	Skipped    int               `json:"skipped"` // changed or removed since they matched
	Failed     map[string]string `json:"failed,omitempty"`
	IDs        []string          `json:"ids"`
	NextCursor string            `json:"next_cursor"`
	DryRun     bool              `json:"dry_run"`
}

// page reads the selection's page of matching items.
func page(col *index.Collection, s Selection) ([]index.Item, string, error) {
	if s.Limit <= 0 {
		s.Limit = DefaultBulk
	}
	if s.Limit > MaxBulk {
		return nil, "", fmt.Errorf("%w: limit %d is above %d items per call", index.ErrInvalidQuery, s.Limit, MaxBulk)
	}
	return col.Scroll(index.ScrollOptions{Cursor: s.Cursor, Limit: s.Limit, Filter: s.Filter})
}

// UpdateWhere applies the metadata patch to one page of the items s selects. Each item is
// re-checked against the filter inside its write, so one edited meanwhile so that it no longer
// matches is skipped, not patched. A patch whose result fails for one item (too large) fails that
// item alone (Report.Failed).
func UpdateWhere(ctx context.Context, col *index.Collection, s Selection, patch json.RawMessage, o Options) (Report, error) {
	rep := Report{IDs: []string{}, DryRun: s.DryRun}
	items, next, err := page(col, s)
	if err != nil {
		return rep, err
	}
	rep.Matched, rep.NextCursor = len(items), next
	for _, li := range items {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		var after index.Item
		err := func() error {
			if s.DryRun {
				it := li
				return apply(&it, patch, o, &after)
			}
			_, err := col.Update(ctx, li.ID, func(it *index.Item) error {
				if s.Filter != nil && !s.Filter.Match(it.Metadata) {
					return errSkip
				}
				return apply(it, patch, o, &after)
			})
			return err
		}()
		switch {
		case err == nil:
			rep.Updated++
			rep.IDs = append(rep.IDs, li.ID)
		case errors.Is(err, errUnchanged):
			rep.Unchanged++
		case errors.Is(err, errSkip) || errors.Is(err, index.ErrNotFound):
			rep.Skipped++
		case errors.Is(err, ErrTooLarge) || errors.Is(err, ErrInvalidPatch):
			if rep.Failed == nil {
				rep.Failed = map[string]string{}
			}
			rep.Failed[li.ID] = err.Error()
		default:
			return rep, err
		}
	}
	return rep, nil
}

// DeleteWhere moves one page of the items s selects to the collection's trash (restorable with
// index.Collection.RestoreFromTrash until the trash is purged).
func DeleteWhere(ctx context.Context, col *index.Collection, s Selection) (Report, error) {
	rep := Report{IDs: []string{}, DryRun: s.DryRun}
	items, next, err := page(col, s)
	if err != nil {
		return rep, err
	}
	rep.Matched, rep.NextCursor = len(items), next
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	if s.DryRun {
		rep.IDs = ids
		return rep, nil
	}
	moved, err := col.Trash(ctx, ids...)
	if err != nil {
		return rep, err
	}
	rep.Trashed, rep.Skipped, rep.IDs = len(moved), len(ids)-len(moved), append(rep.IDs, moved...)
	return rep, nil
}
