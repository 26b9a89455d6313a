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
