package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// openTestDB opens a DB in dir (a fresh temp dir when empty) and checks the
// bbolt file's consistency when the test ends.
func openTestDB(t testing.TB, dir string, o *Options) *DB {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if o == nil {
		o = &Options{NoSync: true}
	}
	db, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkFile(t, filepath.Join(dir, FileName))
	})
	return db
}

func checkFile(t testing.TB, path string) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Errorf("reopen for check: %v", err)
		return
	}
	defer b.Close()
	_ = b.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		return nil
	})
}

var ctx = context.Background()

func mkItems(vecs [][]float32, prefix string, meta func(i int) string) []Item {
	items := make([]Item, len(vecs))
	for i, v := range vecs {
		items[i] = Item{ID: fmt.Sprintf("%s%05d", prefix, i), Vector: v, ContentHash: fmt.Sprintf("h%d", i)}
		if meta != nil {
			items[i].Metadata = json.RawMessage(meta(i))
		}
	}
	return items
}

func upsertAll(t testing.TB, c *Collection, items []Item, batch int) {
	t.Helper()
	for i := 0; i < len(items); i += batch {
		if err := c.Upsert(ctx, items[i:min(i+batch, len(items))]...); err != nil {
			t.Fatalf("Upsert: %v", err)
		}
	}
}

func TestCollectionCRUD(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir, &Options{NoSync: true, ExactThreshold: -1})
	cfg := CollectionConfig{Fingerprint: "test-model@1", Dims: 8}
	c, err := db.CreateCollection("shoes", cfg)
	if err != nil {
		t.Fatal(err)
	}
	vecs := synth.Clustered(300, 8, 5, 1, 3)
	items := mkItems(vecs, "sku", func(i int) string { return fmt.Sprintf(`{"category":"c%d","price":%d}`, i%3, i) })
	items[7].Thumbnail = []byte("jpeg-bytes")
	upsertAll(t, c, items, 64)

	if got := c.Info().Count; got != 300 {
		t.Fatalf("count = %d", got)
	}
	it, err := c.Get("sku00007")
	if err != nil || !bytes.Equal(it.Thumbnail, []byte("jpeg-bytes")) || it.ContentHash != "h7" || string(it.Metadata) != `{"category":"c1","price":7}` {
		t.Fatalf("Get = %+v, %v", it, err)
	}
	if th, err := c.Thumbnail("sku00007"); err != nil || string(th) != "jpeg-bytes" {
		t.Fatalf("Thumbnail = %q, %v", th, err)
	}
	if h, ok := c.Has("sku00009"); !ok || h != "h9" {
		t.Fatalf("Has = %q %v", h, ok)
	}
	if _, err := c.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	// Search finds each item itself first.
	for _, i := range []int{0, 17, 299} {
		res, err := c.Search(ctx, vecs[i], SearchOptions{K: 3})
		if err != nil || len(res) != 3 || res[0].ID != items[i].ID || res[0].Score < 0.999 {
			t.Fatalf("Search(%d) = %+v, %v", i, res, err)
		}
	}
	sim, err := c.Similar(ctx, "sku00017", SearchOptions{K: 5})
	if err != nil || len(sim) != 5 {
		t.Fatalf("Similar: %v %v", sim, err)
	}
	for _, r := range sim {
		if r.ID == "sku00017" {
			t.Fatal("Similar returned the item itself")
		}
	}
	// Update: re-embed sku00000 with sku00299's vector.
	if err := c.Upsert(ctx, Item{ID: "sku00000", Vector: vecs[299]}); err != nil {
		t.Fatal(err)
	}
	res, _ := c.Search(ctx, vecs[299], SearchOptions{K: 2})
	if len(res) != 2 || res[0].Score < 0.999 || res[1].Score < 0.999 {
		t.Fatalf("after update: %+v", res)
	}
	// Delete and list.
	n, err := c.Delete(ctx, "sku00001", "sku00002", "missing")
	if err != nil || n != 2 {
		t.Fatalf("Delete = %d, %v", n, err)
	}
	var all []string
	cur := ""
	for {
		page, next, err := c.List(cur, 50)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page {
			if it.Vector != nil || it.Thumbnail != nil {
				t.Fatal("List returned vectors or thumbnails")
			}
			all = append(all, it.ID)
		}
		if next == "" {
			break
		}
		cur = next
	}
	if len(all) != 298 || all[0] != "sku00000" || all[1] != "sku00003" {
		t.Fatalf("List: %d ids, first %v", len(all), all[:3])
	}
	// Slot reuse: new ids take the freed slots. The update above moved sku00000 to slot 300 and
	// freed its old one, so 3 slots were free for the 2 new ids.
	if err := c.Upsert(ctx, Item{ID: "new-1", Vector: vecs[1]}, Item{ID: "new-2", Vector: vecs[2]}); err != nil {
		t.Fatal(err)
	}
	if len(c.ids) != 301 || len(c.free) != 1 {
		t.Fatalf("slots not reused: %d slots, %d free", len(c.ids), len(c.free))
	}
	res, _ = c.Search(ctx, vecs[2], SearchOptions{K: 1})
	if res[0].ID != "new-2" {
		t.Fatalf("new-2 not found: %+v", res)
	}
}

func TestCollectionValidation(t *testing.T) {
	db := openTestDB(t, "", nil)
	for _, name := range []string{"", "Shoes", "a b", "x/y", string(make([]byte, 65))} {
		if _, err := db.CreateCollection(name, CollectionConfig{Fingerprint: "f", Dims: 4}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("name %q: %v", name, err)
		}
	}
	c, err := db.CreateCollection("c", CollectionConfig{Fingerprint: "f", Dims: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateCollection("c", CollectionConfig{Fingerprint: "f", Dims: 4}); !errors.Is(err, ErrExists) {
		t.Errorf("dup: %v", err)
	}
	for _, cfg := range []CollectionConfig{{Fingerprint: "g", Dims: 4}, {Fingerprint: "f", Dims: 5}} {
		if _, err := db.OpenCollection("c", cfg); !errors.Is(err, ErrFingerprintMismatch) {
			t.Errorf("mismatch %+v: %v", cfg, err)
		}
	}
	nan := float32(0)
	nan = nan / nan
	good := []float32{1, 0, 0, 0}
	cases := []struct {
		name string
		it   Item
	}{
		{"empty id", Item{ID: "", Vector: good}},
		{"long id", Item{ID: string(bytes.Repeat([]byte("a"), 257)), Vector: good}},
		{"bad utf8", Item{ID: "a\xff", Vector: good}},
		{"control", Item{ID: "a\nb", Vector: good}},
		{"dims", Item{ID: "a", Vector: []float32{1, 2}}},
		{"zero", Item{ID: "a", Vector: []float32{0, 0, 0, 0}}},
		{"nan", Item{ID: "a", Vector: []float32{nan, 0, 0, 1}}},
		{"meta array", Item{ID: "a", Vector: good, Metadata: json.RawMessage(`[1]`)}},
		{"meta junk", Item{ID: "a", Vector: good, Metadata: json.RawMessage(`{"a":`)}},
		{"meta big", Item{ID: "a", Vector: good, Metadata: json.RawMessage(`{"a":"` + string(bytes.Repeat([]byte("x"), 65<<10)) + `"}`)}},
	}
	for _, tc := range cases {
		err := c.Upsert(ctx, tc.it)
		if !errors.Is(err, ErrInvalidItem) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if err := c.Upsert(ctx, Item{ID: "a", Vector: []float32{1, 2}}); !errors.Is(err, ErrDimMismatch) {
		t.Errorf("dims should also be ErrDimMismatch: %v", err)
	}
	if _, err := c.Search(ctx, []float32{1}, SearchOptions{}); !errors.Is(err, ErrDimMismatch) {
		t.Errorf("search dims: %v", err)
	}
	if c.Info().Count != 0 {
		t.Error("invalid items were stored")
	}
}

func TestReopenSnapshotAndRebuild(t *testing.T) {
	dir := t.TempDir()
	vecs := synth.Clustered(1500, 32, 10, 1, 5)
	items := mkItems(vecs, "i", func(i int) string { return fmt.Sprintf(`{"tags":["t%d","all"]}`, i%10) })
	o := &Options{NoSync: true, ExactThreshold: -1, SnapshotInterval: -1}
	db, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := db.CreateCollection("a", CollectionConfig{Fingerprint: "f", Dims: 32})
	if _, err := db.CreateCollection("b", CollectionConfig{Fingerprint: "g", Dims: 4}); err != nil {
		t.Fatal(err)
	}
	upsertAll(t, c, items, 100)
	c.Delete(ctx, "i00003")
	want, _ := c.Search(ctx, vecs[10], SearchOptions{K: 10})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	reopen := func(wantFrom string) *Collection {
		t.Helper()
		db, err := Open(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if infos := db.Collections(); len(infos) != 2 || infos[0].Name != "a" || infos[1].Name != "b" || infos[0].Count != 1499 {
			t.Fatalf("Collections = %+v", infos)
		}
		c, err := db.Collection("a")
		if err != nil {
			t.Fatal(err)
		}
		if c.loadedFrom != wantFrom {
			t.Fatalf("loaded from %s, want %s", c.loadedFrom, wantFrom)
		}
		if _, ok := c.Has("i00003"); ok {
			t.Fatal("deleted item came back")
		}
		got, _ := c.Search(ctx, vecs[10], SearchOptions{K: 10})
		if wantFrom == "snapshot" && fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("results differ after reload:\n%v\n%v", got, want)
		}
		if got[0].ID != "i00010" {
			t.Fatalf("self not found: %v", got[0])
		}
		checkIn0(t, c.g, "loaded from "+wantFrom)
		return c
	}
	c = reopen("snapshot")
	c.db.Close()

	// A write after the snapshot makes it stale (the write is not snapshotted
	// because we bypass Close's snapshot by writing through bbolt directly).
	b, _ := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	b.Update(func(tx *bolt.Tx) error {
		// Advance the sequence number without a log entry: the snapshot
		// cannot be brought up to date and must be rebuilt.
		bk := tx.Bucket(bucketCollections).Bucket([]byte("a"))
		seq := binary.BigEndian.Uint64(bk.Get(keySeq))
		return bk.Put(keySeq, binary.BigEndian.AppendUint64(nil, seq+1))
	})
	b.Close()
	c = reopen("rebuild")
	c.db.Close()

	// A corrupt snapshot (bit flip) is detected by the checksum.
	b, _ = bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	b.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketCollections).Bucket([]byte("a"))
		s := bytes.Clone(bk.Get(keyGraph))
		s[len(s)/2] ^= 0x40
		return bk.Put(keyGraph, s)
	})
	b.Close()
	reopen("rebuild")
}

func TestDropAndBackup(t *testing.T) {
	db := openTestDB(t, "", nil)
	c, _ := db.CreateCollection("x", CollectionConfig{Fingerprint: "f", Dims: 4})
	c.Upsert(ctx, Item{ID: "a", Vector: []float32{1, 2, 3, 4}})
	var buf bytes.Buffer
	n, err := db.Backup(&buf)
	if err != nil || n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Backup = %d, %v", n, err)
	}
	// The backup is a valid DB with the item.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), buf.Bytes(), 0o600)
	db2 := openTestDB(t, dir, nil)
	c2, err := db2.Collection("x")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c2.Has("a"); !ok {
		t.Fatal("backup lacks item")
	}
	if err := db.DropCollection("x"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("x"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	// A dropped collection says so; ErrClosed would claim the whole DB is shutting down.
	if err := c.Upsert(ctx, Item{ID: "b", Vector: []float32{1, 2, 3, 4}}); !errors.Is(err, ErrDropped) || errors.Is(err, ErrClosed) {
		t.Fatalf("upsert into dropped: %v", err)
	}
	if _, err := c.Search(ctx, []float32{1, 2, 3, 4}, SearchOptions{}); !errors.Is(err, ErrDropped) {
		t.Fatalf("search in dropped: %v", err)
	}
	if err := db.DropCollection("x"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := db.CreateCollection("x", CollectionConfig{Fingerprint: "f", Dims: 4})
	c.Upsert(ctx, Item{ID: "a", Vector: []float32{1, 2, 3, 4}})
	db.Close()

	ro, err := Open(dir, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	c, err = ro.Collection("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Upsert(ctx, Item{ID: "b", Vector: []float32{1, 2, 3, 4}}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Upsert: %v", err)
	}
	if _, err := c.Delete(ctx, "a"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Delete: %v", err)
	}
	if _, err := ro.CreateCollection("y", CollectionConfig{Fingerprint: "f", Dims: 4}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("CreateCollection: %v", err)
	}
	if res, err := c.Search(ctx, []float32{1, 2, 3, 4}, SearchOptions{K: 1}); err != nil || res[0].ID != "a" {
		t.Errorf("Search on read-only: %v %v", res, err)
	}
	if _, err := c.Get("a"); err != nil {
		t.Errorf("Get on read-only: %v", err)
	}
}

func TestPeriodicSnapshotAndClosed(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, &Options{NoSync: true, SnapshotInterval: 20 * time.Millisecond, ExactThreshold: -1})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := db.CreateCollection("x", CollectionConfig{Fingerprint: "f", Dims: 8})
	upsertAll(t, c, mkItems(synth.Clustered(100, 8, 2, 1, 1), "a", nil), 50)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.RLock()
		done := c.snapSeq == c.seq
		c.mu.RUnlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no periodic snapshot")
		}
		time.Sleep(10 * time.Millisecond)
	}
	db.Close()
	if _, err := c.Search(ctx, make([]float32, 8), SearchOptions{}); err == nil {
		t.Error("search on a zero vector accepted")
	}
	if _, err := c.Search(ctx, []float32{1, 0, 0, 0, 0, 0, 0, 0}, SearchOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("search after Close: %v", err)
	}
	if err := c.Upsert(ctx, Item{ID: "z", Vector: []float32{1, 0, 0, 0, 0, 0, 0, 0}}); err == nil {
		t.Error("upsert after Close accepted")
	}
	if _, err := db.Collection("x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Collection after Close: %v", err)
	}
}

// TestReplayAfterCrash: writes after the last snapshot (upserts, updates,
// deletes, slot reuse, trailing slots freed) are replayed onto the snapshot
// at Open instead of rebuilding the whole graph.
func TestReplayAfterCrash(t *testing.T) {
	dir := t.TempDir()
	o := &Options{NoSync: true, ExactThreshold: -1, SnapshotInterval: -1}
	vecs := synth.Clustered(1300, 32, 8, 1, 21)
	db, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := db.CreateCollection("a", CollectionConfig{Fingerprint: "f", Dims: 32})
	upsertAll(t, c, mkItems(vecs[:1000], "i", nil), 100)
	if err := db.Snapshot(); err != nil {
		t.Fatal(err)
	}
	// After the snapshot: delete (incl. the last slots), update, reuse, add.
	c.Delete(ctx, "i00000", "i00500", "i00998", "i00999")
	c.Upsert(ctx, Item{ID: "i00010", Vector: vecs[1100]})
	upsertAll(t, c, mkItems(vecs[1000:1100], "n", nil), 30)
	c.Delete(ctx, "n00099")
	// Crash: close the file without Close's snapshot.
	db.closed.Store(true)
	close(db.stop)
	db.wg.Wait()
	db.bolt.Close()

	db2 := openTestDB(t, dir, o)
	c2, _ := db2.Collection("a")
	if c2.loadedFrom != "snapshot+replay" {
		t.Fatalf("loaded from %s", c2.loadedFrom)
	}
	if got := c2.Info().Count; got != 1000-4+99 {
		t.Fatalf("count %d", got)
	}
	if r := reachable(c2.g); r != c2.g.count {
		t.Fatalf("%d of %d reachable", r, c2.g.count)
	}
	for _, id := range []string{"i00000", "i00500", "i00999", "n00099"} {
		if _, ok := c2.Has(id); ok {
			t.Errorf("%s came back", id)
		}
	}
	check := func(id string, v []float32) {
		res, err := c2.Search(ctx, v, SearchOptions{K: 1})
		if err != nil || len(res) == 0 || res[0].ID != id {
			t.Errorf("%s not found: %v %v", id, res, err)
		}
	}
	check("i00010", vecs[1100])
	for i := 0; i < 99; i++ {
		check(fmt.Sprintf("n%05d", i), vecs[1000+i])
	}
	for i := 1; i < 998; i += 37 {
		if i != 10 && i != 500 {
			check(fmt.Sprintf("i%05d", i), vecs[i])
		}
	}
}

// TestOpenWhileLocked: a second open of a data directory another DB holds, read-only or not, fails
// with ErrLocked (bbolt's flock excludes readers from a writer's file): never ErrStorage, which
// would send an operator looking for a damaged disk.
func TestOpenWhileLocked(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, ro := range []bool{false, true} {
		if second, err := Open(dir, &Options{ReadOnly: ro}); !errors.Is(err, ErrLocked) || errors.Is(err, ErrStorage) {
			if second != nil {
				second.Close()
			}
			t.Errorf("open (read-only %v) while held: %v, want ErrLocked", ro, err)
		}
	}
}
