package edit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/lookalike/lookalike/index"
)

// TestMergePatchRFC7386 runs the examples of RFC 7386 Appendix A, plus the byte-preservation
// promises: untouched members keep their digits, escapes and order.
func TestMergePatchRFC7386(t *testing.T) {
	for _, tc := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		// Beyond the RFC's examples: what Lookalike promises about bytes.
		{``, `{"a": 1, "b": null}`, `{"a":1}`},
		{`{"ean":9007199254740993,"z":"\u00e9<>","a":1.50}`, `{"a":2}`, `{"ean":9007199254740993,"z":"\u00e9<>","a":2}`},
		{`{"b":1,"a":{"y":1e3,"x":[1, 2]}}`, `{"a":{"x":null,"w":true}}`, `{"b":1,"a":{"y":1e3,"w":true}}`},
		{`{"a":1,"b":2,"a":3}`, `{"a":4}`, `{"a":4,"b":2}`},
		{`{"k":1}`, `{"\u006b":null, "n" : [ 1 , {"x" : 2} ]}`, `{"n":[1,{"x":2}]}`},
	} {
		got, err := MergePatch(json.RawMessage(tc.target), json.RawMessage(tc.patch))
		if err != nil || string(got) != tc.want {
			t.Errorf("MergePatch(%s, %s) = %s, %v; want %s", tc.target, tc.patch, got, err, tc.want)
		}
	}
	for _, bad := range []string{``, `{`, `{"a":}`, `{"a":1}x`} {
		if _, err := MergePatch(json.RawMessage(`{}`), json.RawMessage(bad)); !errors.Is(err, ErrInvalidPatch) {
			t.Errorf("MergePatch with patch %q: %v, want ErrInvalidPatch", bad, err)
		}
	}
}

func TestPatchMetadataLimits(t *testing.T) {
	for _, tc := range []struct {
		stored, patch string
		max           int
		want          string
		err           error
	}{
		{`{"a":1}`, `null`, 0, ``, nil},
		{`{"a":1}`, `{"a":null}`, 0, ``, nil},
		{`{"a":1}`, `[1]`, 0, ``, ErrInvalidPatch},
		{`{"a":1}`, `"x"`, 0, ``, ErrInvalidPatch},
		{`{"a":1}`, `{"b":1e400}`, 0, ``, ErrInvalidPatch},
		{`{"a":1}`, `{"b":"0123456789"}`, 16, ``, ErrTooLarge},
		{``, `{"b":2}`, 0, `{"b":2}`, nil},
	} {
		got, err := PatchMetadata(json.RawMessage(tc.stored), json.RawMessage(tc.patch), Options{MaxMetadataBytes: tc.max})
		if !errors.Is(err, tc.err) || tc.err == nil && string(got) != tc.want {
			t.Errorf("PatchMetadata(%s, %s) = %s, %v; want %s, %v", tc.stored, tc.patch, got, err, tc.want, tc.err)
		}
	}
}

// testCollection is a real bbolt-backed collection of n items with metadata meta(i).
func testCollection(t *testing.T, n int, meta func(i int) string) *index.Collection {
	t.Helper()
	db, err := index.Open(t.TempDir(), &index.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	col, err := db.CreateCollection("c", index.CollectionConfig{Fingerprint: "m", Dims: 4})
	if err != nil {
		t.Fatal(err)
	}
	items := make([]index.Item, n)
	for i := range items {
		items[i] = index.Item{ID: fmt.Sprintf("it%03d", i), Vector: []float32{1, float32(i), 2, 3}, Metadata: json.RawMessage(meta(i)),
			ContentHash: fmt.Sprintf("h%d", i), Thumbnail: []byte{0xff, 0xd8, byte(i)}}
	}
	if err := col.Upsert(context.Background(), items...); err != nil {
		t.Fatal(err)
	}
	return col
}

func TestPatchVersionsAndKeepsTheRest(t *testing.T) {
	ctx := context.Background()
	col := testCollection(t, 2, func(i int) string { return `{"ean":1234567890123456789,"price":10}` })
	before, err := col.Get("it000")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Patch(ctx, col, "it000", json.RawMessage(`{"price":12}`), before.Version+1, Options{}); !errors.Is(err, index.ErrVersionConflict) {
		t.Fatalf("a stale version: %v, want ErrVersionConflict", err)
	}
	res, err := Patch(ctx, col, "it000", json.RawMessage(`{"price":12,"sale":true}`), before.Version, Options{})
	if err != nil || !res.Changed || res.Item.Version <= before.Version || string(res.Item.Metadata) != `{"ean":1234567890123456789,"price":12,"sale":true}` {
		t.Fatalf("Patch = %+v, %v", res, err)
	}
	after, err := col.Get("it000")
	if err != nil || after.Version != res.Item.Version || string(after.Metadata) != string(res.Item.Metadata) ||
		!slices.Equal(after.Vector, before.Vector) || string(after.Thumbnail) != string(before.Thumbnail) || after.ContentHash != before.ContentHash {
		t.Fatalf("stored after the patch: %+v, %v (before %+v)", after, err, before)
	}
	// The same patch again changes nothing: no write, the version stays.
	again, err := Patch(ctx, col, "it000", json.RawMessage(`{"price":12}`), 0, Options{})
	if err != nil || again.Changed || again.Item.Version != res.Item.Version {
		t.Fatalf("a no-op patch: %+v, %v", again, err)
	}
	if _, err := Patch(ctx, col, "nope", json.RawMessage(`{}`), 0, Options{}); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("a missing item: %v", err)
	}
}

// Concurrent patches of one item under preconditions: each version is won by exactly one.
func TestPatchConcurrentPreconditions(t *testing.T) {
	ctx := context.Background()
	col := testCollection(t, 1, func(int) string { return `{"n":0}` })
	it, _ := col.Get("it000")
	var wg sync.WaitGroup
	wins := make([]bool, 8)
	for g := range wins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Patch(ctx, col, "it000", json.RawMessage(fmt.Sprintf(`{"n":%d}`, g+1)), it.Version, Options{})
			wins[g] = err == nil
			if err != nil && !errors.Is(err, index.ErrVersionConflict) {
				t.Errorf("patch %d: %v", g, err)
			}
		}()
	}
	wg.Wait()
	n := 0
	for _, w := range wins {
		if w {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d patches won the same version, want 1", n)
	}
}

func TestUpdateAndDeleteWhere(t *testing.T) {
	ctx := context.Background()
	col := testCollection(t, 30, func(i int) string { return fmt.Sprintf(`{"colour":%q,"i":%d}`, []string{"red", "blue"}[i%2], i) })
	red, err := index.ParseFilter(`colour = "red"`)
	if err != nil {
		t.Fatal(err)
	}
	// A dry run writes nothing.
	dry, err := UpdateWhere(ctx, col, Selection{Filter: red, Limit: 4, DryRun: true}, json.RawMessage(`{"sale":true}`), Options{})
	if err != nil || dry.Updated != 4 || dry.NextCursor == "" {
		t.Fatalf("dry run: %+v, %v", dry, err)
	}
	if n, _ := col.Count(mustFilter(t, `sale = true`)); n != 0 {
		t.Fatalf("a dry run wrote %d items", n)
	}
	// Pages of 4 reach every red item once.
	var updated []string
	for cursor, pages := "", 0; ; pages++ {
		rep, err := UpdateWhere(ctx, col, Selection{Filter: red, Cursor: cursor, Limit: 4}, json.RawMessage(`{"sale":true,"i":null}`), Options{})
		if err != nil || pages > 10 {
			t.Fatalf("page %d: %+v, %v", pages, rep, err)
		}
		updated = append(updated, rep.IDs...)
		if cursor = rep.NextCursor; cursor == "" {
			break
		}
	}
	if len(updated) != 15 {
		t.Fatalf("updated %d items, want the 15 red ones: %v", len(updated), updated)
	}
	it, _ := col.Get("it002")
	if string(it.Metadata) != `{"colour":"red","sale":true}` {
		t.Fatalf("patched metadata %s", it.Metadata)
	}
	// Delete by filter moves to the trash, restorable.
	rep, err := DeleteWhere(ctx, col, Selection{Filter: red, Limit: 1000})
	if err != nil || rep.Trashed != 15 || rep.NextCursor != "" {
		t.Fatalf("DeleteWhere: %+v, %v", rep, err)
	}
	if n, _ := col.Count(nil); n != 15 {
		t.Fatalf("%d items left, want 15", n)
	}
	if _, err := col.RestoreFromTrash(ctx, "it002"); err != nil {
		t.Fatalf("restore a deleted item: %v", err)
	}
	if _, err := DeleteWhere(ctx, col, Selection{Filter: red, Limit: MaxBulk + 1}); !errors.Is(err, index.ErrInvalidQuery) {
		t.Fatalf("a limit above MaxBulk: %v", err)
	}
}

func mustFilter(t *testing.T, expr string) *index.Filter {
	t.Helper()
	f, err := index.ParseFilter(expr)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// FuzzMergePatch checks MergePatch against RFC 7386's definition run on decoded values, and its
// idempotence (applying a merge patch twice changes nothing more), on arbitrary documents.
func FuzzMergePatch(f *testing.F) {
	f.Add(`{"a":"b","c":{"d":1}}`, `{"a":null,"c":{"e":[1,2]},"f":true}`)
	f.Add(`{"ean":9007199254740993}`, `{"x":{"y":null}}`)
	f.Add(`[1,2]`, `{"a":1}`)
	f.Add(``, `"s"`)
	f.Add(`{"a":1,"a":2}`, `{"a":{"b":null}}`)
	f.Fuzz(func(t *testing.T, target, patch string) {
		if target != "" && !json.Valid([]byte(target)) {
			return
		}
		got, err := MergePatch(json.RawMessage(target), json.RawMessage(patch))
		if !json.Valid([]byte(patch)) {
			if err == nil {
				t.Fatalf("accepted an invalid patch %q", patch)
			}
			return
		}
		if err != nil || !json.Valid(got) {
			t.Fatalf("MergePatch(%q, %q) = %q, %v", target, patch, got, err)
		}
		var tv, pv, gv any
		if target != "" {
			json.Unmarshal([]byte(target), &tv)
		}
		json.Unmarshal([]byte(patch), &pv)
		json.Unmarshal(got, &gv)
		if want := rfcMerge(tv, pv); !reflect.DeepEqual(gv, want) {
			t.Fatalf("MergePatch(%q, %q) = %s, RFC 7386 says %v", target, patch, got, want)
		}
		again, err := MergePatch(got, json.RawMessage(patch))
		if err != nil || string(again) != string(got) {
			t.Fatalf("not idempotent: %s then %s", got, again)
		}
	})
}

// rfcMerge is RFC 7386's pseudocode on decoded JSON values.
func rfcMerge(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
		} else {
			t[k] = rfcMerge(t[k], v)
		}
	}
	return t
}
