package index

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// storedSQ8 reads a collection's persisted ranges straight from the bbolt file.
func storedSQ8(t *testing.T, db *DB, name string) []byte {
	t.Helper()
	var out []byte
	db.bolt.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bucketCollections).Bucket([]byte(name)).Get(keySQ8))
		return nil
	})
	return out
}

// TestCollectionCompression: a collection turns to SQ8 codes when it reaches SQ8TrainAt items,
// stores its ranges in bbolt, keeps exact scores (re-scored from the stored floats), serves Vector
// and Similar from bbolt, and comes back compressed with the same ranges after a reopen.
func TestCollectionCompression(t *testing.T) {
	const dim = 96
	dir := t.TempDir()
	db := openTestDB(t, dir, &Options{NoSync: true, ExactThreshold: -1, SnapshotInterval: -1, EfConstruction: 64})
	c, err := db.CreateCollection("c", CollectionConfig{Fingerprint: "f", Dims: dim})
	if err != nil {
		t.Fatal(err)
	}
	vecs := synth.Clustered(SQ8TrainAt+300, dim, 6, 1, 21)
	items := mkItems(vecs[:SQ8TrainAt+200], "i", func(i int) string { return fmt.Sprintf(`{"g":"g%d"}`, i%3) })
	upsertAll(t, c, items[:SQ8TrainAt-1], 333)
	if c.compressed() || storedSQ8(t, db, "c") != nil {
		t.Fatal("compressed below SQ8TrainAt")
	}
	upsertAll(t, c, items[SQ8TrainAt-1:], 100)
	if !c.compressed() || storedSQ8(t, db, "c") == nil {
		t.Fatal("not compressed at SQ8TrainAt items")
	}
	if m := c.g.memory(); m.Vectors > int64((SQ8TrainAt+200)*dim+16*dim) {
		t.Errorf("compressed collection holds %d vector bytes", m.Vectors)
	}

	check := func(c *Collection) {
		t.Helper()
		// Scores come from the float vectors: the item itself scores its exact cosine (1).
		res, err := c.Search(ctx, vecs[7], SearchOptions{K: 5})
		if err != nil || len(res) != 5 || res[0].ID != "i00007" || math.Abs(float64(res[0].Score)-1) > 1e-5 {
			t.Fatalf("search: %v %+v", err, res)
		}
		for _, r := range res {
			v, err := c.Vector(r.ID)
			if err != nil {
				t.Fatal(err)
			}
			u, _ := normalize(vecs[7])
			if want := dot(u, v); math.Abs(float64(want-r.Score)) > 1e-5 {
				t.Errorf("%s scored %v, its stored vector %v", r.ID, r.Score, want)
			}
		}
		it, _ := c.Get("i00042")
		v, _ := c.Vector("i00042")
		for j := range v {
			if v[j] != it.Vector[j] {
				t.Fatalf("Vector differs from the stored vector at %d", j)
			}
		}
		sim, err := c.Similar(ctx, "i00042", SearchOptions{K: 3})
		if err != nil || len(sim) != 3 || sim[0].ID == "i00042" {
			t.Fatalf("similar: %v %+v", err, sim)
		}
		f, _ := ParseFilter(`g = "g1"`)
		ex, err := c.Search(ctx, vecs[SQ8TrainAt+250], SearchOptions{K: 10, Filter: f, Exact: true})
		ann, err2 := c.Search(ctx, vecs[SQ8TrainAt+250], SearchOptions{K: 10, Filter: f})
		if err != nil || err2 != nil || len(ex) != 10 {
			t.Fatalf("filtered: %v %v", err, err2)
		}
		hit := 0
		for _, a := range ann {
			for _, e := range ex {
				if a.ID == e.ID {
					hit++
				}
			}
		}
		if hit < 9 {
			t.Errorf("filtered ANN found %d of the exact top 10", hit)
		}
	}
	check(c)
	ranges := storedSQ8(t, db, "c")
	db.Close()

	db2 := openTestDB(t, dir, &Options{NoSync: true, ExactThreshold: -1, SnapshotInterval: -1})
	c2, _ := db2.Collection("c")
	if !c2.compressed() || c2.loadedFrom != "snapshot" || !bytes.Equal(c2.g.sq.marshal(), ranges) {
		t.Fatalf("reopened: compressed %v from %s", c2.compressed(), c2.loadedFrom)
	}
	check(c2)
	// Writes after compression are encoded with the stored ranges.
	if err := c2.Upsert(ctx, Item{ID: "late", Vector: vecs[SQ8TrainAt+299]}); err != nil {
		t.Fatal(err)
	}
	if res, _ := c2.Search(ctx, vecs[SQ8TrainAt+299], SearchOptions{K: 1}); len(res) != 1 || res[0].ID != "late" {
		t.Errorf("late item not found: %+v", res)
	}
}

// TestCompressionOptions: CompressionNone keeps floats (and ignores stored ranges); a float
// collection opened with SQ8 trains at Open and stores its ranges; unknown names are refused.
func TestCompressionOptions(t *testing.T) {
	const dim = 32
	dir := t.TempDir()
	vecs := synth.Clustered(SQ8TrainAt+50, dim, 4, 1, 22)
	none := &Options{NoSync: true, SnapshotInterval: -1, Compression: CompressionNone, EfConstruction: 48}
	db, err := Open(dir, none)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := db.CreateCollection("c", CollectionConfig{Fingerprint: "f", Dims: dim})
	upsertAll(t, c, mkItems(vecs, "i", nil), 500)
	if c.compressed() {
		t.Fatal("compressed with CompressionNone")
	}
	db.Close()

	db, _ = Open(dir, &Options{NoSync: true, SnapshotInterval: -1})
	c, _ = db.Collection("c")
	if !c.compressed() || storedSQ8(t, db, "c") == nil || c.loadedFrom != "snapshot" {
		t.Fatalf("opened with SQ8: compressed %v, from %s", c.compressed(), c.loadedFrom)
	}
	if res, _ := c.Search(ctx, vecs[3], SearchOptions{K: 1}); len(res) != 1 || res[0].ID != "i00003" {
		t.Errorf("search after training at Open: %+v", res)
	}
	db.Close()

	db, _ = Open(dir, none)
	c, _ = db.Collection("c")
	if c.compressed() {
		t.Error("CompressionNone used the stored ranges")
	}
	db.Close()

	if _, err := Open(dir, &Options{Compression: "pq"}); err == nil || !strings.Contains(err.Error(), "compression") {
		t.Errorf("unknown compression: %v", err)
	}
}

// TestConcurrentBatchSearch: multi-item writes link on several goroutines while searches run;
// under -race (make race) this checks the link lists' atomic access.
func TestConcurrentBatchSearch(t *testing.T) {
	const dim = 32
	db := openTestDB(t, "", &Options{NoSync: true, ExactThreshold: -1, SnapshotInterval: -1, EfConstruction: 48, BuildWorkers: 3})
	c, _ := db.CreateCollection("c", CollectionConfig{Fingerprint: "f", Dims: dim})
	vecs := synth.Clustered(2400, dim, 8, 1, 23)
	items := mkItems(vecs[:2000], "i", nil)
	upsertAll(t, c, items[:400], 400)
	stop := untilStopped(t, 2, func(w, i int) error {
		_, err := c.Search(ctx, vecs[2000+(i*7+w)%400], SearchOptions{K: 10})
		return err
	})
	upsertAll(t, c, items[400:], 400)
	stop()
	if !c.compressed() {
		t.Error("not compressed at 2000 items")
	}
	if r := reachable(c.g); r != c.g.count || c.g.count != 2000 {
		t.Errorf("%d of %d reachable", r, c.g.count)
	}
}
