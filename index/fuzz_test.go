package index

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	r := record{slot: 300, updatedAt: time.Unix(1700000000, 5).UTC(), version: 42, hash: "sha256:x", meta: []byte(`{"a":1}`), vec: []float32{0.5, -1, float32(math.Pi)}}
	got, err := decodeRecord(appendRecord(nil, &r))
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	b := appendRecord(nil, &r)
	for i := 0; i < len(b); i++ { // every truncation is an error, never a panic
		if _, err := decodeRecord(b[:i]); err == nil {
			t.Fatalf("truncated at %d decoded", i)
		}
	}
}

// A version 1 record (written before items had versions) still decodes, as item version 1.
func TestRecordV1(t *testing.T) {
	v2 := appendRecord(nil, &record{slot: 3, updatedAt: time.Unix(0, 0).UTC(), version: 9, hash: "h", meta: []byte(`{}`), vec: []float32{1}})
	// Drop the version field: 0x01 | slot | updatedAt | hash...
	v1 := append([]byte{recordV1, v2[1], v2[2]}, v2[4:]...)
	got, err := decodeRecord(v1)
	if err != nil || got.version != 1 || got.slot != 3 || got.hash != "h" || len(got.vec) != 1 {
		t.Fatalf("v1 record: %+v, %v", got, err)
	}
	zero := append([]byte{recordVersion, v2[1], v2[2], 0}, v2[4:]...)
	if _, err := decodeRecord(zero); err == nil {
		t.Fatal("a v2 record with item version 0 decoded")
	}
}

// FuzzDecodeRecord: stored bytes may be corrupt; decoding must never panic,
// and whatever decodes must re-encode to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, &record{slot: 1, version: 1, hash: "h", meta: []byte(`{}`), vec: []float32{1, 2}}))
	f.Add([]byte{1})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		again := appendRecord(nil, &r)
		r2, err := decodeRecord(again)
		if err != nil || r2.slot != r.slot || r2.hash != r.hash || !bytes.Equal(r2.meta, r.meta) || len(r2.vec) != len(r.vec) {
			t.Fatalf("re-encode mismatch: %v", err)
		}
	})
}

// FuzzParseFilter: user input; never panic, and a parsed filter prints to a
// text form that parses to an equivalent filter.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		`category = "shoes" AND brand IN ("nike","adidas") AND price >= 10 AND price < 100 AND tags = "red"`,
		`NOT (a = 1 OR b != "x")`, `a NOT IN (1, 2, "3")`, `x.y <= -1.5e3`, `((((a=true))))`,
	} {
		f.Add(s)
	}
	metas := []json.RawMessage{
		json.RawMessage(`{"category":"shoes","brand":"nike","price":42,"tags":["red"],"a":1,"b":"x"}`),
		json.RawMessage(`{}`),
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			return
		}
		g, err := ParseFilter(flt.String())
		if err != nil {
			t.Fatalf("%q printed as %q which does not parse: %v", s, flt.String(), err)
		}
		for _, m := range metas {
			if flt.Match(m) != g.Match(m) {
				t.Fatalf("%q and %q disagree on %s", s, flt.String(), m)
			}
		}
	})
}

// FuzzFilterFromJSON guards the JSON filter parser the same way.
func FuzzFilterFromJSON(f *testing.F) {
	f.Add([]byte(`{"category":"shoes","brand":{"in":["a","b"]},"price":{"gte":10,"lt":100}}`))
	f.Add([]byte(`{"$or":[{"a":1},{"$not":{"b":[true]}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		flt, err := FilterFromJSON(b)
		if err != nil {
			return
		}
		flt.Match(json.RawMessage(`{"a":1,"b":true}`))
	})
}
