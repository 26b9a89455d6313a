package index

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unique"
)

// Filter limits: a filter is user input (query strings), so its size is bounded.
const (
	maxFilterLen   = 4096
	maxFilterDepth = 32
	maxInValues    = 1024
)

type fop uint8

const (
	opAnd fop = iota
	opOr
	opNot
	opEq // field = any of vals (one value for =, several for IN)
	opLt
	opLe
	opGt
	opGe
)

// fval is a filter literal: a keyword (strings, booleans as "true"/"false")
// or a number.
type fval struct {
	s     string
	n     float64
	isNum bool
}

// Filter is a parsed metadata predicate: equality and set membership on
// keyword fields (a field holding an array matches when any element does),
// numeric ranges, combined with AND, OR, NOT. Build one with ParseFilter or
// FilterFromJSON. A Filter is immutable and safe for concurrent use.
type Filter struct {
	op    fop
	field string
	vals  []fval
	kids  []*Filter
}

// attrs is the filterable view of an item's metadata: keyword values and
// numbers per (dotted) field. Two short slices rather than two maps per item
// (maps cost ~650 bytes an item: docs/scale.md), with field names and short
// values interned, so that "category" or "shoes" is held once, not per item.
type attrs struct {
	kw  []kwAttr
	num []numAttr
}

type kwAttr struct{ field, value string }

type numAttr struct {
	field string
	n     float64
}

// internMax: values up to this long are interned (categories, brands, colours
// repeat across items); longer ones (titles) are mostly unique.
const internMax = 32

func intern(s string) string {
	if len(s) > internMax {
		return s
	}
	return unique.Make(s).Value()
}

// number is the numeric value of field.
func (a *attrs) number(field string) (float64, bool) {
	for _, e := range a.num {
		if e.field == field {
			return e.n, true
		}
	}
	return 0, false
}

// parseAttrs flattens a metadata JSON object. Nested objects become dotted
// fields ("dims.width"); arrays contribute every scalar element.
func parseAttrs(meta []byte) attrs {
	var a attrs
	if len(meta) == 0 {
		return a
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(meta))
	d.UseNumber()
	if d.Decode(&m) != nil {
		return a
	}
	a.walk("", m, 0)
	return a
}

func (a *attrs) addKw(f, v string) {
	a.kw = append(a.kw, kwAttr{intern(f), intern(v)})
}

func (a *attrs) walk(prefix string, m map[string]any, depth int) {
	if depth > 8 {
		return
	}
	for k, v := range m {
		f := k
		if prefix != "" {
			f = prefix + "." + k
		}
		switch x := v.(type) {
		case map[string]any:
			a.walk(f, x, depth+1)
		case []any:
			for _, e := range x {
				a.scalar(f, e, true)
			}
		default:
			a.scalar(f, x, false)
		}
	}
}

func (a *attrs) scalar(f string, v any, inArray bool) {
	switch x := v.(type) {
	case string:
		a.addKw(f, x)
	case bool:
		a.addKw(f, strconv.FormatBool(x))
	case json.Number:
		n, err := x.Float64()
		if err != nil {
			return
		}
		if inArray {
			a.addKw(f, strconv.FormatFloat(n, 'g', -1, 64))
			return
		}
		for i := range a.num {
			if a.num[i].field == f {
				a.num[i].n = n
				return
			}
		}
		a.num = append(a.num, numAttr{intern(f), n})
	}
}

// keys lists the posting keys (field NUL value) of the keyword values.
func (a *attrs) keys() []string {
	out := make([]string, 0, len(a.kw))
	for _, e := range a.kw {
		out = append(out, postingKey(e.field, e.value))
	}
	return out
}

func postingKey(field, value string) string { return field + "\x00" + value }

// eachField calls fn once for every field a holds a value in.
func (a *attrs) eachField(fn func(string)) {
	for i, e := range a.kw {
		if !slices.ContainsFunc(a.kw[:i], func(x kwAttr) bool { return x.field == e.field }) {
			fn(e.field)
		}
	}
	for _, e := range a.num {
		if !slices.ContainsFunc(a.kw, func(x kwAttr) bool { return x.field == e.field }) {
			fn(e.field)
		}
	}
}

// Fields lists, sorted and without repeats, the metadata fields the filter
// names (under NOT too).
func (f *Filter) Fields() []string {
	seen := map[string]bool{}
	var walk func(*Filter)
	walk = func(f *Filter) {
		if f.field != "" {
			seen[f.field] = true
		}
		for _, k := range f.kids {
			walk(k)
		}
	}
	if f != nil {
		walk(f)
	}
	out := make([]string, 0, len(seen))
	for name := range seen {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// NonFiniteNumber returns the path of the first number in a metadata JSON
// value that does not fit a float64 ("price", "dims.w[2]"), or "" when every
// number does. JSON allows 1e400; stored, it would never match a numeric
// filter, so writes refuse it. Malformed JSON gives "": other checks report
// it. Numbers too small for a float64 (1e-400) read as 0 and pass.
func NonFiniteNumber(meta []byte) string {
	d := json.NewDecoder(bytes.NewReader(meta))
	d.UseNumber()
	type frame struct {
		obj     bool
		wantKey bool
		key     string
		idx     int
	}
	var path []frame
	where := func() string {
		var b strings.Builder
		for _, f := range path {
			if f.obj {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				fmt.Fprintf(&b, "[%d]", f.idx)
			}
		}
		return b.String()
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		top := len(path) - 1
		if s, ok := tok.(string); ok && top >= 0 && path[top].wantKey {
			path[top].key, path[top].wantKey = s, false
			continue
		}
		if top >= 0 && !path[top].obj && tok != json.Delim(']') {
			path[top].idx++ // a value starts in an array
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				path = append(path, frame{obj: v == '{', wantKey: v == '{', idx: -1})
				continue
			}
			path = path[:top]
		case json.Number:
			if _, err := strconv.ParseFloat(string(v), 64); err != nil {
				return where()
			}
		}
		// A value ended: an object expects its next key.
		if len(path) == 0 {
			return ""
		}
		if t := &path[len(path)-1]; t.obj {
			t.wantKey = true
		}
	}
}

// Match reports whether metadata (a JSON object) satisfies the filter. A nil
// filter matches everything.
func (f *Filter) Match(meta json.RawMessage) bool {
	if f == nil {
		return true
	}
	a := parseAttrs(meta)
	return f.match(&a)
}

func (f *Filter) match(a *attrs) bool {
	switch f.op {
	case opAnd:
		for _, k := range f.kids {
			if !k.match(a) {
				return false
			}
		}
		return true
	case opOr:
		for _, k := range f.kids {
			if k.match(a) {
				return true
			}
		}
		return false
	case opNot:
		return !f.kids[0].match(a)
	case opEq:
		for _, v := range f.vals {
			if v.isNum {
				if n, ok := a.number(f.field); ok && n == v.n {
					return true
				}
			}
			for _, e := range a.kw {
				if e.field == f.field && e.value == v.s {
					return true
				}
			}
		}
		return false
	}
	n, ok := a.number(f.field)
	if !ok {
		return false
	}
	x := f.vals[0].n
	switch f.op {
	case opLt:
		return n < x
	case opLe:
		return n <= x
	case opGt:
		return n > x
	case opGe:
		return n >= x
	}
	return false
}

// String renders the filter in ParseFilter's syntax.
func (f *Filter) String() string {
	if f == nil {
		return ""
	}
	lit := func(v fval) string {
		if v.isNum {
			return strconv.FormatFloat(v.n, 'g', -1, 64)
		}
		return strconv.Quote(v.s)
	}
	switch f.op {
	case opAnd, opOr:
		sep := " AND "
		if f.op == opOr {
			sep = " OR "
		}
		parts := make([]string, len(f.kids))
		for i, k := range f.kids {
			parts[i] = k.String()
		}
		return "(" + strings.Join(parts, sep) + ")"
	case opNot:
		return "NOT " + f.kids[0].String()
	case opEq:
		if len(f.vals) == 1 {
			return f.field + " = " + lit(f.vals[0])
		}
		parts := make([]string, len(f.vals))
		for i, v := range f.vals {
			parts[i] = lit(v)
		}
		return f.field + " IN (" + strings.Join(parts, ", ") + ")"
	}
	ops := map[fop]string{opLt: "<", opLe: "<=", opGt: ">", opGe: ">="}
	return f.field + " " + ops[f.op] + " " + lit(f.vals[0])
}
