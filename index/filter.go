package index

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
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
// numbers per (dotted) field.
type attrs struct {
	kw  map[string][]string
	num map[string]float64
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
	if a.kw == nil {
		a.kw = map[string][]string{}
	}
	a.kw[f] = append(a.kw[f], v)
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
		if a.num == nil {
			a.num = map[string]float64{}
		}
		a.num[f] = n
	}
}

// keys lists the posting keys (field NUL value) of the keyword values.
func (a *attrs) keys() []string {
	var out []string
	for f, vs := range a.kw {
		for _, v := range vs {
			out = append(out, postingKey(f, v))
		}
	}
	return out
}

func postingKey(field, value string) string { return field + "\x00" + value }

// eachField calls fn once for every field a holds a value in.
func (a *attrs) eachField(fn func(string)) {
	for f := range a.kw {
		fn(f)
	}
	for f := range a.num {
		if _, dup := a.kw[f]; !dup {
			fn(f)
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
				if n, ok := a.num[f.field]; ok && n == v.n {
					return true
				}
			}
			for _, s := range a.kw[f.field] {
				if s == v.s {
					return true
				}
			}
		}
		return false
	}
	n, ok := a.num[f.field]
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
