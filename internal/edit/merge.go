package edit

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// jsonSpace is the white space JSON allows around values (bytes.TrimSpace would take more, and
// so accept documents json.Valid refuses).
const jsonSpace = " \t\r\n"

// member is one name/value pair of a JSON object as written: key is the quoted name with its
// original escapes, val the value's bytes.
type member struct {
	name string
	key  []byte
	val  json.RawMessage
}

// MergePatch applies patch to target as RFC 7386 defines: an object patch merges member by member
// (null removes a member, an object merges recursively, anything else replaces), any other patch
// replaces target. An empty target is absent. Members of target that the patch does not name keep
// their bytes and their order; the result is compact when target is.
func MergePatch(target, patch json.RawMessage) (json.RawMessage, error) {
	patch = bytes.Trim(patch, jsonSpace)
	if !json.Valid(patch) {
		return nil, fmt.Errorf("%w: the patch is not valid JSON", ErrInvalidPatch)
	}
	return mergeValid(bytes.Trim(target, jsonSpace), patch)
}

// mergeValid is MergePatch on a valid patch.
func mergeValid(target, patch []byte) (json.RawMessage, error) {
	pm, ok, err := members(patch)
	if err != nil {
		return nil, err
	}
	if !ok {
		return compact(patch)
	}
	var tm []member
	if len(target) > 0 {
		if tm, ok, err = members(target); err != nil {
			return nil, err
		}
		if !ok {
			tm = nil // RFC 7386: a non-object target becomes {}
		}
	}
	last := make(map[string]int, len(pm)) // a name the patch repeats: its last value counts, as in encoding/json
	for i, p := range pm {
		last[p.name] = i
	}
	for i, p := range pm {
		if last[p.name] != i {
			continue
		}
		at := -1
		for i := range tm {
			if tm[i].name == p.name {
				at = i
				break
			}
		}
		if at >= 0 {
			tm = dropLater(tm, at) // a repeated name: the first occurrence is the one kept
		}
		if string(p.val) == "null" {
			if at >= 0 {
				tm = append(tm[:at], tm[at+1:]...)
			}
			continue
		}
		var cur []byte
		if at >= 0 {
			cur = tm[at].val
		}
		v, err := mergeValid(cur, p.val)
		if err != nil {
			return nil, err
		}
		if at >= 0 {
			tm[at].val = v
		} else {
			tm = append(tm, member{name: p.name, key: p.key, val: v})
		}
	}
	out := []byte{'{'}
	for i, m := range tm {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(append(append(out, m.key...), ':'), m.val...)
	}
	return append(out, '}'), nil
}

// dropLater removes the members after at that share its name.
func dropLater(tm []member, at int) []member {
	out := tm[:at+1]
	for _, m := range tm[at+1:] {
		if m.name != tm[at].name {
			out = append(out, m)
		}
	}
	return out
}

// members splits a valid JSON document into its object members, in order; ok is false when the
// document is not an object.
func members(doc []byte) (ms []member, ok bool, err error) {
	if len(doc) == 0 || doc[0] != '{' {
		return nil, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	if _, err := dec.Token(); err != nil { // {
		return nil, false, fmt.Errorf("%w: %v", ErrInvalidPatch, err)
	}
	for dec.More() {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, false, fmt.Errorf("%w: %v", ErrInvalidPatch, err)
		}
		name, _ := tok.(string)
		// The key as written: between the previous value and here lie only a comma and spaces.
		key := bytes.TrimLeft(doc[start:dec.InputOffset()], " \t\r\n,")
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false, fmt.Errorf("%w: member %q: %v", ErrInvalidPatch, name, err)
		}
		ms = append(ms, member{name: name, key: key, val: bytes.Trim(v, jsonSpace)})
	}
	return ms, true, nil
}

func compact(v []byte) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPatch, err)
	}
	return buf.Bytes(), nil
}
