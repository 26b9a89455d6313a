package index

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
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

// ---- text syntax ----

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tOp // = != < <= > >=
	tLParen
	tRParen
	tComma
)

type token struct {
	kind tokKind
	text string
	pos  int
}

type filterParser struct {
	src   string
	toks  []token
	i     int
	depth int
}

func filterErr(pos int, format string, args ...any) error {
	return fmt.Errorf("%w: at %d: %s", ErrInvalidFilter, pos, fmt.Sprintf(format, args...))
}

func lexFilter(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{tLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tRParen, ")", i})
			i++
		case c == ',':
			toks = append(toks, token{tComma, ",", i})
			i++
		case c == '=':
			toks = append(toks, token{tOp, "=", i})
			i++
			if i < len(s) && s[i] == '=' { // accept ==
				i++
			}
		case c == '!' || c == '<' || c == '>':
			if i+1 < len(s) && s[i+1] == '=' {
				toks = append(toks, token{tOp, s[i : i+2], i})
				i += 2
			} else if c == '!' {
				return nil, filterErr(i, "unexpected '!'")
			} else {
				toks = append(toks, token{tOp, s[i : i+1], i})
				i++
			}
		case c == '"' || c == '\'':
			j := i + 1
			var b strings.Builder
			for {
				if j >= len(s) {
					return nil, filterErr(i, "unterminated string")
				}
				if s[j] == '\\' && j+1 < len(s) {
					b.WriteByte(s[j+1])
					j += 2
					continue
				}
				if s[j] == c {
					break
				}
				b.WriteByte(s[j])
				j++
			}
			if !utf8.ValidString(b.String()) {
				return nil, filterErr(i, "string is not valid UTF-8")
			}
			toks = append(toks, token{tString, b.String(), i})
			i = j + 1
		case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
			j := i + 1
			for j < len(s) && (s[j] == '.' || s[j] == 'e' || s[j] == 'E' || s[j] == '-' || s[j] == '+' || (s[j] >= '0' && s[j] <= '9')) {
				j++
			}
			toks = append(toks, token{tNumber, s[i:j], i})
			i = j
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			if !(unicode.IsLetter(r) || r == '_') {
				return nil, filterErr(i, "unexpected %q", r)
			}
			j := i
			for j < len(s) {
				r, n := utf8.DecodeRuneInString(s[j:])
				if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '.' || r == '-') {
					break
				}
				j += n
			}
			toks = append(toks, token{tIdent, s[i:j], i})
			i = j
		}
	}
	return append(toks, token{tEOF, "", len(s)}), nil
}

// ParseFilter parses the text form used by the CLI and query strings:
//
//	category = "shoes" AND brand IN ("nike","adidas") AND price >= 10 AND price < 100 AND tags = "red"
//
// Operators: = (or ==), !=, <, <=, >, >=, IN (...), NOT IN (...); AND binds
// tighter than OR; NOT; parentheses. Keywords are case-insensitive. Literals:
// double- or single-quoted strings, numbers, true/false. Input is limited to
// 4096 bytes and 32 levels of nesting. Errors wrap ErrInvalidFilter and give
// the byte offset.
func ParseFilter(expr string) (*Filter, error) {
	if len(expr) > maxFilterLen {
		return nil, filterErr(maxFilterLen, "filter longer than %d bytes", maxFilterLen)
	}
	if strings.TrimSpace(expr) == "" {
		return nil, filterErr(0, "empty filter")
	}
	toks, err := lexFilter(expr)
	if err != nil {
		return nil, err
	}
	p := &filterParser{src: expr, toks: toks}
	f, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, filterErr(t.pos, "unexpected %q", t.text)
	}
	return f, nil
}

func (p *filterParser) peek() token { return p.toks[p.i] }
func (p *filterParser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *filterParser) keyword(w string) bool {
	t := p.peek()
	if t.kind == tIdent && strings.EqualFold(t.text, w) {
		p.i++
		return true
	}
	return false
}

func (p *filterParser) or() (*Filter, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxFilterDepth {
		return nil, filterErr(p.peek().pos, "nested deeper than %d", maxFilterDepth)
	}
	f, err := p.and()
	if err != nil {
		return nil, err
	}
	kids := []*Filter{f}
	for p.keyword("OR") {
		g, err := p.and()
		if err != nil {
			return nil, err
		}
		kids = append(kids, g)
	}
	if len(kids) == 1 {
		return f, nil
	}
	return &Filter{op: opOr, kids: kids}, nil
}

func (p *filterParser) and() (*Filter, error) {
	f, err := p.unary()
	if err != nil {
		return nil, err
	}
	kids := []*Filter{f}
	for p.keyword("AND") {
		g, err := p.unary()
		if err != nil {
			return nil, err
		}
		kids = append(kids, g)
	}
	if len(kids) == 1 {
		return f, nil
	}
	return &Filter{op: opAnd, kids: kids}, nil
}

func (p *filterParser) unary() (*Filter, error) {
	if p.keyword("NOT") {
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxFilterDepth {
			return nil, filterErr(p.peek().pos, "nested deeper than %d", maxFilterDepth)
		}
		f, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &Filter{op: opNot, kids: []*Filter{f}}, nil
	}
	if t := p.peek(); t.kind == tLParen {
		p.i++
		f, err := p.or()
		if err != nil {
			return nil, err
		}
		if t := p.next(); t.kind != tRParen {
			return nil, filterErr(t.pos, "expected ')'")
		}
		return f, nil
	}
	return p.comparison()
}

func isReserved(s string) bool {
	switch strings.ToUpper(s) {
	case "AND", "OR", "NOT", "IN":
		return true
	}
	return false
}

func (p *filterParser) literal() (fval, error) {
	t := p.next()
	switch t.kind {
	case tString:
		return fval{s: t.text}, nil
	case tNumber:
		n, err := strconv.ParseFloat(t.text, 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			return fval{}, filterErr(t.pos, "bad number %q", t.text)
		}
		return numVal(n), nil
	case tIdent:
		switch strings.ToLower(t.text) {
		case "true", "false":
			return fval{s: strings.ToLower(t.text)}, nil
		}
	}
	if t.kind == tEOF {
		return fval{}, filterErr(t.pos, "expected a value, got end of input")
	}
	return fval{}, filterErr(t.pos, "expected a value, got %q", t.text)
}

func numVal(n float64) fval {
	return fval{n: n, isNum: true, s: strconv.FormatFloat(n, 'g', -1, 64)}
}

func (p *filterParser) comparison() (*Filter, error) {
	t := p.next()
	if t.kind != tIdent || isReserved(t.text) {
		if t.kind == tEOF {
			return nil, filterErr(t.pos, "expected a field name, got end of input")
		}
		return nil, filterErr(t.pos, "expected a field name, got %q", t.text)
	}
	field := t.text
	neg := false
	if p.keyword("NOT") {
		neg = true
		if !p.keyword("IN") {
			return nil, filterErr(p.peek().pos, "expected IN after NOT")
		}
		return p.inList(field, neg)
	}
	if p.keyword("IN") {
		return p.inList(field, neg)
	}
	op := p.next()
	if op.kind != tOp {
		return nil, filterErr(op.pos, "expected an operator after %q", field)
	}
	v, err := p.literal()
	if err != nil {
		return nil, err
	}
	return cmpFilter(field, op.text, v, op.pos)
}

func cmpFilter(field, op string, v fval, pos int) (*Filter, error) {
	switch op {
	case "=", "==":
		return &Filter{op: opEq, field: field, vals: []fval{v}}, nil
	case "!=":
		return &Filter{op: opNot, kids: []*Filter{{op: opEq, field: field, vals: []fval{v}}}}, nil
	}
	if !v.isNum {
		return nil, filterErr(pos, "%s needs a number", op)
	}
	m := map[string]fop{"<": opLt, "<=": opLe, ">": opGt, ">=": opGe}
	o, ok := m[op]
	if !ok {
		return nil, filterErr(pos, "unknown operator %q", op)
	}
	return &Filter{op: o, field: field, vals: []fval{v}}, nil
}

func (p *filterParser) inList(field string, neg bool) (*Filter, error) {
	if t := p.next(); t.kind != tLParen {
		return nil, filterErr(t.pos, "expected '(' after IN")
	}
	var vals []fval
	for {
		v, err := p.literal()
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
		if len(vals) > maxInValues {
			return nil, filterErr(p.peek().pos, "more than %d values in IN", maxInValues)
		}
		t := p.next()
		if t.kind == tRParen {
			break
		}
		if t.kind != tComma {
			return nil, filterErr(t.pos, "expected ',' or ')'")
		}
	}
	f := &Filter{op: opEq, field: field, vals: vals}
	if neg {
		f = &Filter{op: opNot, kids: []*Filter{f}}
	}
	return f, nil
}

// ---- JSON form ----

// FilterFromJSON parses the JSON form: an object whose keys are fields
// (implicit AND). A value is a literal (equality), an array (membership), or
// an object of operators: eq, ne, in, nin, gt, gte, lt, lte. The keys "$and"
// and "$or" take arrays of filter objects, "$not" a filter object.
//
//	{"category":"shoes","brand":{"in":["a","b"]},"price":{"gte":10,"lt":100}}
func FilterFromJSON(raw json.RawMessage) (*Filter, error) {
	if len(raw) > 64<<10 {
		return nil, fmt.Errorf("%w: JSON filter larger than 64 KiB", ErrInvalidFilter)
	}
	return jsonFilter(raw, 0)
}

func jsonErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidFilter, fmt.Sprintf(format, args...))
}

func jsonFilter(raw json.RawMessage, depth int) (*Filter, error) {
	if depth > maxFilterDepth {
		return nil, jsonErr("nested deeper than %d", maxFilterDepth)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, jsonErr("filter must be a JSON object")
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var kids []*Filter
	for _, k := range keys {
		v := m[k]
		switch k {
		case "$and", "$or":
			var arr []json.RawMessage
			if err := json.Unmarshal(v, &arr); err != nil || len(arr) == 0 {
				return nil, jsonErr("%s takes a non-empty array of filters", k)
			}
			var sub []*Filter
			for _, e := range arr {
				f, err := jsonFilter(e, depth+1)
				if err != nil {
					return nil, err
				}
				sub = append(sub, f)
			}
			op := opAnd
			if k == "$or" {
				op = opOr
			}
			kids = append(kids, &Filter{op: op, kids: sub})
		case "$not":
			f, err := jsonFilter(v, depth+1)
			if err != nil {
				return nil, err
			}
			kids = append(kids, &Filter{op: opNot, kids: []*Filter{f}})
		default:
			if k == "" {
				return nil, jsonErr("empty field name")
			}
			f, err := jsonField(k, v)
			if err != nil {
				return nil, err
			}
			kids = append(kids, f)
		}
	}
	if len(kids) == 0 {
		return nil, jsonErr("empty filter object")
	}
	if len(kids) == 1 {
		return kids[0], nil
	}
	return &Filter{op: opAnd, kids: kids}, nil
}

func jsonLiteral(field string, raw json.RawMessage) (fval, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return fval{}, jsonErr("field %q: bad value", field)
	}
	switch v := x.(type) {
	case string:
		return fval{s: v}, nil
	case bool:
		return fval{s: strconv.FormatBool(v)}, nil
	case json.Number:
		n, err := v.Float64()
		if err != nil {
			return fval{}, jsonErr("field %q: bad number", field)
		}
		return numVal(n), nil
	}
	return fval{}, jsonErr("field %q: value must be a string, number or boolean", field)
}

func jsonList(field string, raw json.RawMessage) ([]fval, error) {
	var arr []json.RawMessage
	if err := json.Unmarshal(raw, &arr); err != nil || len(arr) == 0 {
		return nil, jsonErr("field %q: in/nin take a non-empty array", field)
	}
	if len(arr) > maxInValues {
		return nil, jsonErr("field %q: more than %d values", field, maxInValues)
	}
	vals := make([]fval, 0, len(arr))
	for _, e := range arr {
		v, err := jsonLiteral(field, e)
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
	}
	return vals, nil
}

func jsonField(field string, raw json.RawMessage) (*Filter, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		vals, err := jsonList(field, raw)
		if err != nil {
			return nil, err
		}
		return &Filter{op: opEq, field: field, vals: vals}, nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		v, err := jsonLiteral(field, raw)
		if err != nil {
			return nil, err
		}
		return &Filter{op: opEq, field: field, vals: []fval{v}}, nil
	}
	var ops map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ops); err != nil || len(ops) == 0 {
		return nil, jsonErr("field %q: operator object must be non-empty", field)
	}
	names := make([]string, 0, len(ops))
	for k := range ops {
		names = append(names, k)
	}
	sort.Strings(names)
	var kids []*Filter
	for _, op := range names {
		v := ops[op]
		var f *Filter
		switch op {
		case "in", "nin":
			vals, err := jsonList(field, v)
			if err != nil {
				return nil, err
			}
			f = &Filter{op: opEq, field: field, vals: vals}
			if op == "nin" {
				f = &Filter{op: opNot, kids: []*Filter{f}}
			}
		case "eq", "ne", "gt", "gte", "lt", "lte":
			lit, err := jsonLiteral(field, v)
			if err != nil {
				return nil, err
			}
			sym := map[string]string{"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
			f, err = cmpFilter(field, sym, lit, 0)
			if err != nil {
				return nil, jsonErr("field %q: %s needs a number", field, op)
			}
		default:
			return nil, jsonErr("field %q: unknown operator %q", field, op)
		}
		kids = append(kids, f)
	}
	if len(kids) == 1 {
		return kids[0], nil
	}
	return &Filter{op: opAnd, kids: kids}, nil
}
