package index

import (
	"fmt"
	"sort"

	"github.com/lookalike/lookalike/rerank"
)

// Query-side checks: the search limits, and the metadata fields a filter can name.

// check validates o against the query limits; k is o.K with its default applied.
func (o *SearchOptions) check(k int) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidQuery, fmt.Sprintf(format, args...))
	}
	switch {
	case k < 1 || k > MaxK:
		return bad("k %d outside 1..%d", k, MaxK)
	case o.Offset < 0:
		return bad("negative offset %d", o.Offset)
	case o.Offset > MaxK-k:
		return bad("k+offset %d exceeds the result window %d", k+o.Offset, MaxK)
	case o.Ef < 0 || o.Ef > MaxEf:
		return bad("ef %d outside 0..%d (0 = the collection's default)", o.Ef, MaxEf)
	case o.MinScore != nil && !(*o.MinScore >= -1 && *o.MinScore <= 1): // NaN fails both
		return bad("min score %v outside -1..1", *o.MinScore)
	case o.Rerank > rerank.ModeQEKR:
		return bad("re-ranking mode %v unknown", o.Rerank)
	}
	return nil
}

// countFields adds delta to the item count of every field a holds a value
// in. Under mu.Lock.
func (c *Collection) countFields(a *attrs, delta int) {
	if c.fields == nil {
		c.fields = map[string]int{}
	}
	a.eachField(func(f string) {
		if c.fields[f] += delta; c.fields[f] <= 0 {
			delete(c.fields, f)
		}
	})
}

// HasField reports whether any item holds a filterable value (a string,
// number or boolean, or an array of them) in field, the dotted path of a
// nested object's member ("dims.width"). A filter on any other field can
// match nothing, or under NOT everything: callers reject it as a typo.
func (c *Collection) HasField(field string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.fields[field] > 0
}

// Fields lists, sorted, the fields HasField reports.
func (c *Collection) Fields() []string {
	c.mu.RLock()
	out := make([]string, 0, len(c.fields))
	for f := range c.fields {
		out = append(out, f)
	}
	c.mu.RUnlock()
	sort.Strings(out)
	return out
}
