package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/locate"
)

// One engine serves every test of the package: creating ONNX Runtime sessions costs real time.
var (
	engineOnce sync.Once
	sharedEng  *embed.Engine
	engineErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedEng != nil {
		sharedEng.Close()
	}
	os.Exit(code)
}

func testEngine(t *testing.T) *embed.Engine {
	t.Helper()
	engineOnce.Do(func() {
		o := embed.Options{Device: "cpu", RuntimeLibrary: locate.RuntimeLibrary("")}
		if o.ModelPath, o.LabelsPath, engineErr = locate.ModelFiles(spec.DefaultModel()); engineErr != nil {
			return
		}
		sharedEng, engineErr = embed.New(context.Background(), o)
	})
	if engineErr != nil {
		if errors.Is(engineErr, locate.ErrNotFound) && os.Getenv("CI") == "" {
			t.Skipf("model not installed (run scripts/setup): %v", engineErr)
		}
		t.Fatalf("embed.New: %v", engineErr)
	}
	return sharedEng
}

// photoPath is the path of UKBench photo i (objects come in groups of four views).
func photoPath(t *testing.T, i int) string {
	t.Helper()
	dir, err := locate.Dir("ukbench", locate.DatasetDirs())
	if err != nil {
		t.Skipf("UKBench photos not found: %v", err)
	}
	return filepath.Join(dir, fmt.Sprintf("ukbench%05d.jpg", i))
}

func photo(t *testing.T, i int) []byte {
	t.Helper()
	b, err := os.ReadFile(photoPath(t, i))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testCollection opens a fresh collection for the engine's vectors in a temporary data directory.
func testCollection(t *testing.T, eng *embed.Engine) *index.Collection {
	t.Helper()
	db, err := index.Open(t.TempDir(), &index.Options{NoSync: true, SnapshotInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	info := eng.Info()
	col, err := db.CreateCollection("test", index.CollectionConfig{Fingerprint: info.Fingerprint, Dims: info.Dims})
	if err != nil {
		t.Fatal(err)
	}
	return col
}

func store(t *testing.T, eng *embed.Engine, col *index.Collection, p Policy, inputs ...Input) []Result {
	t.Helper()
	res, err := Store(context.Background(), eng, col, inputs, p)
	if err != nil {
		t.Fatalf("Store: %v", err)
	}
	if len(res) != len(inputs) {
		t.Fatalf("%d results for %d inputs", len(res), len(inputs))
	}
	return res
}

// TestStoreOutcomes walks one collection through every outcome and per-item error of Store.
func TestStoreOutcomes(t *testing.T) {
	eng := testEngine(t)
	col := testCollection(t, eng)
	p0, p1, p2, p3 := photo(t, 0), photo(t, 4), photo(t, 8), photo(t, 12)
	var v1 uint64

	created := store(t, eng, col, Policy{}, Input{ID: "a", Image: p0, Metadata: json.RawMessage(`{"k": 1}`)})[0]
	if created.Err != nil || created.Outcome != Created || created.Version == 0 || created.Timings == nil {
		t.Fatalf("first store: %+v", created)
	}
	v1 = created.Version

	again := store(t, eng, col, Policy{}, Input{ID: "a", Image: p0, Metadata: json.RawMessage(`{"k":1}`)})[0]
	if again.Err != nil || again.Outcome != Unchanged || again.Version != v1 || again.Timings != nil {
		t.Fatalf("same photo and metadata: %+v, want unchanged at version %d without embedding", again, v1)
	}
	forced := store(t, eng, col, Policy{Force: true}, Input{ID: "a", Image: p0, Metadata: json.RawMessage(`{"k":1}`)})[0]
	if forced.Err != nil || forced.Outcome != Unchanged || forced.Version != v1 || forced.Timings == nil {
		t.Fatalf("forced: %+v, want embedded again and still unchanged", forced)
	}

	replaced := store(t, eng, col, Policy{}, Input{ID: "a", Image: p0, Metadata: json.RawMessage(`{"k":2}`)})[0]
	if replaced.Err != nil || replaced.Outcome != Replaced || replaced.Version <= v1 {
		t.Fatalf("new metadata: %+v", replaced)
	}

	// No id: the photo names the item, so sending it again addresses the same one.
	anon := store(t, eng, col, Policy{}, Input{Image: p1})[0]
	if anon.Err != nil || anon.Outcome != Created || anon.ID != ContentID(p1) || len(anon.ID) != 36 {
		t.Fatalf("no id: %+v", anon)
	}
	if r := store(t, eng, col, Policy{}, Input{Image: p1})[0]; r.Outcome != Unchanged || r.ID != anon.ID {
		t.Fatalf("same photo without id again: %+v", r)
	}

	// A repeated id in one call: the first is stored, the later one refused, nothing folded.
	res := store(t, eng, col, Policy{}, Input{ID: "dup", Image: p2}, Input{ID: "dup", Image: p3}, Input{Image: p2}, Input{Image: p2})
	if res[0].Outcome != Created || !errors.Is(res[1].Err, ErrDuplicateID) || res[2].Outcome != Created || !errors.Is(res[3].Err, ErrDuplicateID) {
		t.Fatalf("repeated ids: %+v", res)
	}
	if it, _ := col.Get("dup"); it.ContentHash != ContentHash(p2, nil) {
		t.Fatalf("the later input with a repeated id replaced the first")
	}

	// Preconditions: a stale version is refused, the current one writes.
	cur, _ := col.Get("a")
	stale := store(t, eng, col, Policy{}, Input{ID: "a", Image: p3, IfVersion: v1})[0]
	if !errors.Is(stale.Err, index.ErrVersionConflict) {
		t.Fatalf("stale if-version: %+v", stale)
	}
	ok := store(t, eng, col, Policy{}, Input{ID: "a", Image: p3, IfVersion: cur.Version})[0]
	if ok.Err != nil || ok.Outcome != Replaced {
		t.Fatalf("current if-version: %+v", ok)
	}

	// One bad item never sinks the others: an undecodable photo fails at embedding, invalid
	// metadata and a stale precondition make the index refuse the group, which is then retried
	// one by one.
	res = store(t, eng, col, Policy{},
		Input{ID: "g1", Image: p1},
		Input{ID: "corrupt", Image: []byte("\xff\xd8\xff\xe0 truncated")},
		Input{ID: "badmeta", Image: p2, Metadata: json.RawMessage(`[1,2]`)},
		Input{ID: "a", Image: p0, IfVersion: v1},
		Input{ID: "g2", Image: p3})
	if res[0].Outcome != Created || res[4].Outcome != Created {
		t.Fatalf("good items of a batch with bad ones: %+v", res)
	}
	if !errors.Is(res[1].Err, embed.ErrCorrupt) && !errors.Is(res[1].Err, embed.ErrNotImage) {
		t.Errorf("corrupt photo: %v", res[1].Err)
	}
	if !errors.Is(res[2].Err, index.ErrInvalidItem) || !errors.Is(res[3].Err, index.ErrVersionConflict) {
		t.Errorf("invalid metadata %v; stale version %v", res[2].Err, res[3].Err)
	}
	if n := col.Info().Count; n != 6 {
		t.Errorf("collection holds %d items, want 6 (a, the anonymous one, dup, its photo's id, g1, g2)", n)
	}
}

// finderOf is a stand-in for the catalog intelligence: target, when the photo is that alike to it.
func finderOf(target string, min float32) DuplicateFinder {
	return func(ctx context.Context, col *index.Collection, id string, vec []float32, thumb []byte) (*Duplicate, error) {
		res, err := col.Search(ctx, vec, index.SearchOptions{K: 10, MinScore: &min, ExcludeIDs: []string{id}})
		if err != nil {
			return nil, err
		}
		for _, r := range res {
			if r.ID == target {
				return &Duplicate{ID: r.ID, Score: r.Score, Tier: "near"}, nil
			}
		}
		return nil, nil
	}
}

func TestStoreDuplicatePolicy(t *testing.T) {
	eng := testEngine(t)
	col := testCollection(t, eng)
	orig := photo(t, 0)
	// Stored bytes that a decode and re-encode would change: digits, key order, escapes.
	const stored = `{"price":59.90,"sku":12345678901234567890,"z":"\u00e9<b>","a":[1.0,2]}`
	if r := store(t, eng, col, Policy{}, Input{ID: "orig", Image: orig, Metadata: json.RawMessage(stored)})[0]; r.Err != nil {
		t.Fatal(r.Err)
	}
	var compact bytes.Buffer
	json.Compact(&compact, []byte(stored))
	find := finderOf("orig", 0.99)
	cases := []struct {
		name     string
		policy   Policy
		meta     string
		outcome  Outcome
		err      error
		wantMeta string // orig's metadata afterwards
	}{
		{"no finder stores it", Policy{OnDuplicate: DuplicateReject}, `{"x":1}`, Created, nil, compact.String()},
		{"allow stores it and names the duplicate", Policy{FindDuplicate: find}, `{"x":1}`, Created, nil, compact.String()},
		{"reject", Policy{FindDuplicate: find, OnDuplicate: DuplicateReject}, `{"x":1}`, "", ErrDuplicate, compact.String()},
		{"merge adds only missing fields, keeping stored bytes", Policy{FindDuplicate: find, OnDuplicate: DuplicateMerge},
			`{"price": 1, "brand": "acme", "n": 0.10000000000000000001}`, Merged, nil, compact.String()[:compact.Len()-1] + `,"brand":"acme","n":0.10000000000000000001}`},
		{"merge with nothing to add", Policy{FindDuplicate: find, OnDuplicate: DuplicateMerge}, `{"brand":"other"}`, Merged, nil,
			compact.String()[:compact.Len()-1] + `,"brand":"acme","n":0.10000000000000000001}`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := col.Get("orig")
			id := fmt.Sprintf("copy-%d", i)
			r := store(t, eng, col, tc.policy, Input{ID: id, Image: orig, Metadata: json.RawMessage(tc.meta)})[0]
			if r.Outcome != tc.outcome || !errors.Is(r.Err, tc.err) || (tc.err == nil) != (r.Err == nil) {
				t.Fatalf("got %q %v, want %q %v", r.Outcome, r.Err, tc.outcome, tc.err)
			}
			if tc.policy.FindDuplicate != nil && (r.Duplicate == nil || r.Duplicate.ID != "orig") {
				t.Errorf("duplicate %+v, want orig", r.Duplicate)
			}
			after, err := col.Get("orig")
			if err != nil || string(after.Metadata) != tc.wantMeta {
				t.Fatalf("orig metadata %s, want %s", after.Metadata, tc.wantMeta)
			}
			if _, exists := col.Has(id); exists != (tc.outcome == Created) {
				t.Errorf("%s stored: %v", id, exists)
			}
			if tc.outcome == Merged {
				if r.MergedInto != "orig" || r.Version != after.Version || string(r.Metadata) != tc.wantMeta {
					t.Errorf("merge result %+v, stored version %d", r, after.Version)
				}
				if !bytes.Equal(after.Thumbnail, before.Thumbnail) || after.ContentHash != before.ContentHash {
					t.Errorf("a merge changed the stored photo")
				}
				if changed := string(after.Metadata) != string(before.Metadata); changed != (after.Version != before.Version) {
					t.Errorf("version %d -> %d with metadata changed %v: a merge with nothing to add must not write", before.Version, after.Version, changed)
				}
			}
		})
	}
	// The duplicate is gone by the time of the merge: the photo is stored as a new item.
	gone := func(context.Context, *index.Collection, string, []float32, []byte) (*Duplicate, error) {
		return &Duplicate{ID: "deleted-meanwhile", Score: 1, Tier: "exact"}, nil
	}
	r := store(t, eng, col, Policy{FindDuplicate: gone, OnDuplicate: DuplicateMerge}, Input{ID: "late", Image: orig})[0]
	if r.Err != nil || r.Outcome != Created || r.Duplicate != nil {
		t.Fatalf("merge into a deleted item: %+v", r)
	}
	// The check cannot run: under reject and merge nothing is stored and Store fails (the API
	// answers with the error's status); under allow the photo is stored without a report.
	failing := func(context.Context, *index.Collection, string, []float32, []byte) (*Duplicate, error) {
		return nil, fmt.Errorf("duplicate check: %w", index.ErrStorage)
	}
	for i, onDup := range []DuplicateAction{DuplicateReject, DuplicateMerge, DuplicateAllow} {
		id := fmt.Sprintf("unchecked-%d", i)
		res, err := Store(context.Background(), eng, col, []Input{{ID: id, Image: orig}}, Policy{FindDuplicate: failing, OnDuplicate: onDup})
		_, stored := col.Has(id)
		if onDup == DuplicateAllow {
			if err != nil || res[0].Err != nil || res[0].Outcome != Created || !stored {
				t.Errorf("allow, check failing: %v %+v (stored %v), want it created", err, res[0], stored)
			}
			continue
		}
		if !errors.Is(err, index.ErrStorage) || !errors.Is(res[0].Err, index.ErrStorage) || res[0].Outcome != "" || stored {
			t.Errorf("%s, check failing: %v %+v (stored %v), want the check's error and nothing stored", onDup, err, res[0], stored)
		}
	}
}

func TestAddMissingFields(t *testing.T) {
	cases := []struct {
		stored, add, want string
		changed           bool
	}{
		{``, `{"b":1,"a":"x"}`, `{"a":"x","b":1}`, true},
		{`{}`, `{"a": [1, 2]}`, `{"a":[1,2]}`, true},
		{`{"z":1.50,"a":{"n":1}}`, `{"a":2,"m":true}`, `{"z":1.50,"a":{"n":1},"m":true}`, true},
		{`{"a":1}`, `{"a":2}`, `{"a":1}`, false},
		{`{"a":1}`, `{}`, `{"a":1}`, false},
		{`{"a":1,"a":2}`, `{"<":"é"}`, `{"a":1,"a":2,"\u003c":"é"}`, true},
	}
	for _, tc := range cases {
		var add map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tc.add), &add); err != nil {
			t.Fatal(err)
		}
		got, changed, err := addMissingFields(json.RawMessage(tc.stored), add)
		if err != nil || string(got) != tc.want || changed != tc.changed {
			t.Errorf("addMissingFields(%s, %s) = %s %v %v, want %s %v", tc.stored, tc.add, got, changed, err, tc.want, tc.changed)
		}
		if changed && !json.Valid(got) {
			t.Errorf("invalid JSON %s", got)
		}
	}
	if _, _, err := addMissingFields(json.RawMessage(`[1]`), map[string]json.RawMessage{"a": json.RawMessage("1")}); !errors.Is(err, index.ErrInvalidItem) {
		t.Errorf("stored metadata that is not an object: %v", err)
	}
}

// TestRunManifestRepeatedID: a manifest naming one id twice reports the later row as failed
// (ErrDuplicateID) and stores the first, instead of counting both as added and keeping one.
func TestRunManifestRepeatedID(t *testing.T) {
	eng := testEngine(t)
	col := testCollection(t, eng)
	dir := t.TempDir()
	manifest := filepath.Join(dir, "m.csv")
	rows := fmt.Sprintf("id,path,color\nsku-1,%s,red\nsku-2,%s,blue\nsku-1,%s,green\nsku-3,missing.jpg,x\n",
		photoPath(t, 0), photoPath(t, 4), photoPath(t, 8))
	if err := os.WriteFile(manifest, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	srcs, err := Collect([]string{manifest})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), eng, col, srcs, Options{BatchSize: 2, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Added != 2 || rep.Failed != 2 || len(rep.Failures) != 2 {
		t.Fatalf("report %+v, want 2 added and 2 failed", rep)
	}
	var dupErr, readErr bool
	for _, f := range rep.Failures {
		dupErr = dupErr || (f.ID == "sku-1" && f.Path == photoPath(t, 8) && errors.Is(f.Err, ErrDuplicateID))
		readErr = readErr || (f.ID == "sku-3" && errors.Is(f.Err, os.ErrNotExist))
	}
	if !dupErr || !readErr {
		t.Errorf("failures %+v: want the repeated sku-1 row (duplicate id) and sku-3 (missing file)", rep.Failures)
	}
	if it, err := col.Get("sku-1"); err != nil || string(it.Metadata) != `{"color":"red"}` {
		t.Errorf("sku-1: %s %v, want the first row's metadata", it.Metadata, err)
	}
	// A second run changes nothing and fails the same rows.
	rep, err = Run(context.Background(), eng, col, srcs, Options{})
	if err != nil || rep.Added != 0 || rep.Skipped != 2 || rep.Failed != 2 {
		t.Fatalf("second run: %+v %v", rep, err)
	}
}
