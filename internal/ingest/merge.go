package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lookalike/lookalike/index"
)

// errNothingToAdd ends an Update that would not change the item, so nothing is rewritten.
var errNothingToAdd = errors.New("nothing to add")

// mergeMetadata adds the fields of meta that the stored item id lacks; its photo, vector and
// existing fields stay exactly as stored. It runs inside the collection's conditional update, so
// a concurrent merge, tag or replacement is never overwritten with what this one read. It returns
// the item as stored afterwards (without vector and thumbnail).
func mergeMetadata(ctx context.Context, col *index.Collection, id string, meta json.RawMessage) (index.Item, index.Written, error) {
	var add map[string]json.RawMessage
	if t := bytes.TrimSpace(meta); len(t) > 0 && string(t) != "null" {
		if err := json.Unmarshal(t, &add); err != nil || add == nil {
			return index.Item{}, index.Written{}, fmt.Errorf("%w: item metadata must be a JSON object", index.ErrInvalidItem)
		}
	}
	var after index.Item
	w, err := col.Update(ctx, id, func(it *index.Item) error {
		merged, changed, err := addMissingFields(it.Metadata, add)
		if err != nil {
			return fmt.Errorf("merge into %q: %w", id, err)
		}
		if changed {
			it.Metadata, it.UpdatedAt = merged, time.Now().UTC()
		}
		after = index.Item{ID: it.ID, Metadata: it.Metadata, UpdatedAt: it.UpdatedAt, Version: it.Version}
		if !changed {
			return errNothingToAdd
		}
		return nil
	})
	if errors.Is(err, errNothingToAdd) {
		return after, index.Written{ID: id, Version: after.Version, Outcome: index.Unchanged}, nil
	}
	if err != nil {
		return index.Item{}, index.Written{}, err
	}
	after.Version = w.Version
	return after, w, nil
}

// addMissingFields appends to the stored metadata object the fields of add it lacks, in key
// order. The stored bytes are kept as they are (no decode and re-encode: numbers keep their
// digits, keys their order and escapes); the added values are compacted, not reinterpreted.
func addMissingFields(stored json.RawMessage, add map[string]json.RawMessage) (json.RawMessage, bool, error) {
	have := map[string]json.RawMessage{}
	stored = bytes.TrimSpace(stored)
	if len(stored) > 0 {
		if err := json.Unmarshal(stored, &have); err != nil || have == nil {
			return nil, false, fmt.Errorf("%w: stored metadata is not a JSON object", index.ErrInvalidItem)
		}
	}
	var keys []string
	for k := range add {
		if _, ok := have[k]; !ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return stored, false, nil
	}
	slices.Sort(keys)
	out := []byte("{")
	if len(have) > 0 {
		// A non-empty object: everything up to its closing brace, then a comma.
		out = append(bytes.Clone(stored[:len(stored)-1]), ',')
	}
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		name, err := json.Marshal(k)
		if err != nil {
			return nil, false, err
		}
		out = append(append(out, name...), ':')
		var v bytes.Buffer
		if err := json.Compact(&v, add[k]); err != nil {
			return nil, false, fmt.Errorf("%w: metadata field %q: %v", index.ErrInvalidItem, k, err)
		}
		out = append(out, v.Bytes()...)
	}
	return append(out, '}'), true, nil
}
