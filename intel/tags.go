package intel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/lookalike/lookalike/index"
)

// TagSuggestion is one suggested value of a field. Confidence is the similarity-weighted share of
// the labelled neighbours that carry the value (0..1).
type TagSuggestion struct {
	Value      string  `json:"value"`
	Confidence float64 `json:"confidence"`
	Votes      int     `json:"votes"`
}

// AutoTaggedField records, in an item's metadata, which fields were written by suggestion (field →
// confidence), so curated and suggested values can be told apart and suggestions never vote.
const AutoTaggedField = "auto_tagged"

// SuggestTags votes on every keyword field (string or array of strings) of the k nearest neighbours
// of vec that carry the field; self is excluded. Fields written by suggestion do not vote.
func SuggestTags(ctx context.Context, col *index.Collection, vec []float32, self string, k int) (map[string][]TagSuggestion, error) {
	if k <= 0 {
		k = 15
	}
	opts := index.SearchOptions{K: min(4*k, index.MaxK)}
	if self != "" {
		opts.ExcludeIDs = []string{self}
	}
	res, err := col.Search(ctx, vec, opts)
	if err != nil {
		return nil, err
	}
	return voteTags(res, k), nil
}

// voteTemperature sharpens the similarity weights: a neighbour 0.1 less similar counts e^-1 as
// much. Plain cosine weights let far neighbours outvote near ones in small or sparse catalogs
// (cosines of unrelated photos are 0.5-0.7, not 0); on Fashion-MNIST both give the same accuracy
// (docs/intelligence.md).
const voteTemperature = 0.1

type tally struct {
	total   float64
	voters  int
	weights map[string]float64
	votes   map[string]int
}

func voteTags(res []index.Result, k int) map[string][]TagSuggestion {
	fields := map[string]*tally{}
	for _, r := range res {
		var obj map[string]any
		if len(r.Metadata) == 0 || json.Unmarshal(r.Metadata, &obj) != nil {
			continue
		}
		auto, _ := obj[AutoTaggedField].(map[string]any)
		w := math.Exp((float64(r.Score) - 1) / voteTemperature)
		for f, v := range obj {
			vals := keywords(v)
			if f == AutoTaggedField || auto[f] != nil || vals == nil {
				continue
			}
			t := fields[f]
			if t == nil {
				t = &tally{weights: map[string]float64{}, votes: map[string]int{}}
				fields[f] = t
			}
			if t.voters >= k {
				continue
			}
			t.voters++
			t.total += w
			for _, s := range vals {
				t.weights[s] += w
				t.votes[s]++
			}
		}
	}
	out := map[string][]TagSuggestion{}
	for f, t := range fields {
		if t.total > 0 {
			out[f] = t.suggestions()
		}
	}
	return out
}

// keywords are the string values of a field (a string or the strings of a list); nil otherwise.
func keywords(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		vals := []string{}
		for _, e := range x {
			if s, ok := e.(string); ok {
				vals = append(vals, s)
			}
		}
		return vals
	}
	return nil
}

// suggestions are the five best values, by confidence then value.
func (t *tally) suggestions() []TagSuggestion {
	var sug []TagSuggestion
	for v, w := range t.weights {
		sug = append(sug, TagSuggestion{Value: v, Confidence: math.Round(w/t.total*1000) / 1000, Votes: t.votes[v]})
	}
	sort.Slice(sug, func(i, j int) bool {
		if sug[i].Confidence != sug[j].Confidence {
			return sug[i].Confidence > sug[j].Confidence
		}
		return sug[i].Value < sug[j].Value
	})
	return sug[:min(len(sug), 5)]
}

// TagOptions configure TagItems.
type TagOptions struct {
	K             int      // neighbours voting; 0 = 15
	MinConfidence float64  // suggestions below this are not written
	Overwrite     bool     // replace curated values too (default: fill only missing fields)
	DryRun        bool     // report without writing
	Fields        []string // fields to fill; empty = every keyword field the neighbours carry
}

// TagChange is one field written (or, in a dry run, that would be). Previous is the value it
// replaced, as stored (raw JSON).
type TagChange struct {
	ID         string          `json:"id"`
	Field      string          `json:"field"`
	Value      string          `json:"value"`
	Previous   json.RawMessage `json:"previous,omitempty"`
	Confidence float64         `json:"confidence"`
}

// TagReport summarises one TagItems page.
type TagReport struct {
	Scanned       int            `json:"scanned"`
	Updated       int            `json:"updated"`
	Written       map[string]int `json:"written"`        // field → values written
	LowConfidence int            `json:"low_confidence"` // suggestions left out for their confidence
	Changes       []TagChange    `json:"changes"`
	NextCursor    string         `json:"next_cursor"`
	DryRun        bool           `json:"dry_run"`
}

// Add folds another page's report into r (for callers that tag a whole collection).
func (r *TagReport) Add(o TagReport) {
	r.Scanned += o.Scanned
	r.Updated += o.Updated
	r.LowConfidence += o.LowConfidence
	if r.Written == nil {
		r.Written = map[string]int{}
	}
	for f, n := range o.Written {
		r.Written[f] += n
	}
	r.Changes = append(r.Changes, o.Changes...)
	r.NextCursor, r.DryRun = o.NextCursor, o.DryRun
}

// errSkip and errUnchanged abort an Update without writing.
var (
	errSkip      = errors.New("intel: item left as it is")
	errUnchanged = errors.New("intel: nothing to write")
)

// TagItems fills the missing fields of up to limit items after cursor with their best suggestion
// when its confidence reaches o.MinConfidence, and records them under metadata.auto_tagged.
// Curated values are kept unless o.Overwrite. Fields whose values are lists (tags) get the list of
// suggested values at or above the threshold.
//
// Each item is rewritten through index.Collection.Update: the decision is made on the metadata as
// stored at the moment of the write, under the collection's write lock, so a concurrent edit is
// never lost; and the metadata is edited as raw JSON, so the fields it does not touch keep their
// exact bytes (a 19-digit EAN stays what it was, where a float64 round trip would change it).
func TagItems(ctx context.Context, col *index.Collection, cursor string, limit int, o TagOptions) (TagReport, error) {
	rep := TagReport{Written: map[string]int{}, Changes: []TagChange{}, DryRun: o.DryRun}
	items, next, err := col.List(cursor, limit)
	if err != nil {
		return rep, err
	}
	rep.NextCursor = next
	for _, li := range items {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rep.Scanned++
		vec, err := col.Vector(li.ID)
		if errors.Is(err, index.ErrNotFound) {
			continue
		}
		if err != nil {
			return rep, err
		}
		sug, err := SuggestTags(ctx, col, vec, li.ID, o.K)
		if err != nil {
			return rep, err
		}
		var plan tagPlan
		if o.DryRun {
			plan, err = planTags(li.ID, li.Metadata, sug, o)
		} else {
			_, err = col.Update(ctx, li.ID, func(it *index.Item) error {
				p, err := planTags(it.ID, it.Metadata, sug, o)
				plan = p
				switch {
				case err != nil:
					return errSkip // metadata that is not an object: not ours to fix
				case len(p.changes) == 0:
					return errUnchanged
				case len(p.meta) > index.MaxMetadataLen:
					return errSkip
				}
				it.Metadata, it.UpdatedAt = p.meta, time.Now().UTC()
				return nil
			})
		}
		rep.LowConfidence += plan.low
		switch {
		case errors.Is(err, errSkip) || errors.Is(err, index.ErrNotFound) || o.DryRun && err != nil:
			continue
		case err != nil && !errors.Is(err, errUnchanged):
			return rep, err
		}
		if len(plan.changes) > 0 {
			rep.Updated++
			rep.Changes = append(rep.Changes, plan.changes...)
			for _, ch := range plan.changes {
				rep.Written[ch.Field]++
			}
		}
	}
	return rep, nil
}

// tagPlan is what tagging does to one item's metadata.
type tagPlan struct {
	meta    json.RawMessage // the new metadata (when there are changes)
	changes []TagChange
	low     int // suggestions left out for their confidence
}

// planTags decides the fields to write into the stored metadata raw. Only the written fields and
// auto_tagged are re-encoded; every other value keeps its bytes.
func planTags(id string, raw json.RawMessage, sug map[string][]TagSuggestion, o TagOptions) (tagPlan, error) {
	var p tagPlan
	meta := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return p, err
		}
		if meta == nil { // "null"
			meta = map[string]json.RawMessage{}
		}
	}
	auto := map[string]json.RawMessage{}
	if a, ok := meta[AutoTaggedField]; ok {
		if json.Unmarshal(a, &auto) != nil || auto == nil {
			auto = map[string]json.RawMessage{} // not an object: replaced if anything is written
		}
	}
	fields := make([]string, 0, len(sug))
	for f := range sug {
		if len(o.Fields) == 0 || slices.Contains(o.Fields, f) {
			fields = append(fields, f)
		}
	}
	sort.Strings(fields)
	for _, f := range fields {
		prev, has := meta[f]
		if has && !isSet(auto[f]) && !o.Overwrite {
			continue // curated
		}
		best := sug[f][0]
		if best.Confidence < o.MinConfidence {
			p.low++
			continue
		}
		var val any = best.Value
		if isList(prev) || listField(f) {
			var vals []string
			for _, s := range sug[f] {
				if s.Confidence >= o.MinConfidence {
					vals = append(vals, s.Value)
				}
			}
			val = vals
		}
		enc, err := marshalExact(val)
		if err != nil {
			return p, err
		}
		if has && sameJSON(prev, enc) {
			continue
		}
		meta[f] = enc
		auto[f], _ = marshalExact(best.Confidence)
		ch := TagChange{ID: id, Field: f, Value: best.Value, Confidence: best.Confidence}
		if has {
			ch.Previous = prev
		}
		p.changes = append(p.changes, ch)
	}
	if len(p.changes) == 0 {
		return p, nil
	}
	var err error
	if meta[AutoTaggedField], err = marshalExact(auto); err != nil {
		return p, err
	}
	p.meta, err = marshalExact(meta)
	return p, err
}

// listField says which missing fields are written as lists: the vote does not keep the JSON shape,
// so the conventional list fields are named (a present field keeps its own shape).
func listField(f string) bool {
	return f == "tags" || f == "labels"
}

func isList(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && v[0] == '['
}

func isSet(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && !bytes.Equal(v, []byte("null"))
}

func sameJSON(a, b json.RawMessage) bool {
	var ca, cb bytes.Buffer
	return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && bytes.Equal(ca.Bytes(), cb.Bytes())
}

// marshalExact encodes v without HTML escaping: raw values inside keep their bytes (json.Marshal
// would rewrite "<", ">" and "&" in the untouched strings of the metadata).
func marshalExact(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
