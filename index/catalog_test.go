package index

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// crashClose closes db's file without Close's snapshot, as kill -9 would leave it.
func crashClose(db *DB) {
	db.closed.Store(true)
	close(db.stop)
	db.wg.Wait()
	db.bolt.Close()
}

// loadedState is what Open builds per slot, to compare the catalog's load with the records'.
type loadedState struct {
	IDs, Hashes []string
	Metas       []string
	Attrs       []string
	ByID        map[string]uint32
	Free        []uint32
	Live        []bool
	Codes       []uint8
	Vecs        []float32
	Postings    map[string][]uint32
	Fields      map[string]int
}

func stateOf(c *Collection) loadedState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := loadedState{
		IDs: slices.Clone(c.ids), Hashes: slices.Clone(c.hashes), ByID: maps.Clone(c.byID),
		Free:     slices.Sorted(slices.Values(c.free)),
		Postings: map[string][]uint32{}, Fields: maps.Clone(c.fields),
	}
	for i := range c.metas {
		s.Metas = append(s.Metas, string(c.metas[i]))
		// Their order is a map's (parseAttrs), and meaningless.
		var a []string
		for _, e := range c.attrs[i].kw {
			a = append(a, fmt.Sprintf("%q=%q", e.field, e.value))
		}
		for _, e := range c.attrs[i].num {
			a = append(a, fmt.Sprintf("%q=%v", e.field, e.n))
		}
		slices.Sort(a)
		s.Attrs = append(s.Attrs, fmt.Sprint(a))
	}
	for i, l := range c.g.levels {
		s.Live = append(s.Live, l >= 0) // levels: re-inserted slots draw theirs anew
		if l < 0 {
			continue
		}
		if c.g.sq != nil {
			s.Codes = append(s.Codes, c.g.code(uint32(i))...)
		} else {
			s.Vecs = append(s.Vecs, c.g.vec(uint32(i))...)
		}
	}
	for k, set := range c.postings {
		s.Postings[k] = slices.Sorted(maps.Keys(set))
	}
	return s
}

// TestCatalogOpenMatchesRecords: Open from the catalog written with the snapshot, brought up to
// date from the records of the items written since (replaced in place and moved, metadata
// changed, deleted, deleted and added again, added), builds exactly the state a walk of every
// record builds, compressed and not; a damaged catalog, a missing one and a log entry without ids
// (an older version's) each send Open to the records, with the same result.
func TestCatalogOpenMatchesRecords(t *testing.T) {
	old := catalogBlock
	catalogBlock = 64 // many blocks, most of them unchanged between snapshots
	t.Cleanup(func() { catalogBlock = old })
	for _, tc := range []struct {
		name        string
		comp        string
		n           int
		breaks      func(t *testing.T, b *bolt.Bucket)
		midSnapshot bool
		from        string
	}{
		{name: "sq8", comp: CompressionSQ8, n: 1300, from: "catalog"},
		{name: "float", comp: CompressionNone, n: 400, from: "catalog"},
		{name: "sq8 below training", comp: CompressionSQ8, n: 300, from: "catalog"},
		{name: "crash mid-snapshot", comp: CompressionSQ8, n: 1300, from: "catalog", midSnapshot: true},
		{name: "damaged block", comp: CompressionSQ8, n: 1300, from: "records", breaks: func(t *testing.T, b *bolt.Bucket) {
			cb := b.Bucket(bucketCatalog)
			k, v := cb.Cursor().First()
			v = slices.Clone(v)
			v[len(v)/2] ^= 0x40
			if err := cb.Put(slices.Clone(k), v); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "no catalog", comp: CompressionSQ8, n: 1300, from: "records", breaks: func(t *testing.T, b *bolt.Bucket) {
			if err := b.Delete(keyCatalog); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "log entry without ids", comp: CompressionNone, n: 400, from: "records", breaks: func(t *testing.T, b *bolt.Bucket) {
			lb := b.Bucket(bucketLog)
			k, v := lb.Cursor().First()
			n, p := binary.Uvarint(v)
			for range n {
				_, q := binary.Uvarint(v[p:])
				p += q
			}
			if err := lb.Put(slices.Clone(k), slices.Clone(v[:p])); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := &Options{NoSync: true, SnapshotInterval: -1, ExactThreshold: -1, EfConstruction: 32, Compression: tc.comp}
			db, err := Open(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			c, _ := db.CreateCollection("a", CollectionConfig{Fingerprint: "f", Dims: 24})
			vecs := synth.Clustered(tc.n+200, 24, 6, 1, 7)
			meta := func(i int) string {
				return fmt.Sprintf(`{"brand":"b%d","price":%d.25,"tags":["x","y%d"],"dims":{"w":%d},"title":"a long title that is not interned at all %d"}`, i%7, i, i%3, i%11, i)
			}
			upsertAll(t, c, mkItems(vecs[:tc.n], "i", meta), 250)
			if err := db.Snapshot(); err != nil {
				t.Fatal(err)
			}
			// Between snapshots: deleted, moved (a new vector), metadata changed, deleted and
			// back, added, added and deleted. The second snapshot rewrites only the blocks
			// these touched.
			round := func(r int) {
				c.Delete(ctx, fmt.Sprintf("i%05d", r), fmt.Sprintf("i%05d", r+5), fmt.Sprintf("i%05d", tc.n-1-r))
				c.Upsert(ctx, Item{ID: fmt.Sprintf("i%05d", r+10), Vector: vecs[tc.n+r], ContentHash: "moved", Metadata: json.RawMessage(`{"brand":"moved"}`)})
				c.Upsert(ctx, Item{ID: fmt.Sprintf("i%05d", r+11), Vector: vecs[r+11], ContentHash: fmt.Sprintf("h%d", r+11), Metadata: json.RawMessage(`{"brand":"renamed","price":1}`)})
				c.Upsert(ctx, Item{ID: fmt.Sprintf("i%05d", r+5), Vector: vecs[tc.n+r+2]})
				upsertAll(t, c, mkItems(vecs[tc.n+r+3:tc.n+r+30], fmt.Sprintf("n%d-", r), meta), 20)
				c.Delete(ctx, fmt.Sprintf("n%d-00001", r))
			}
			round(0)
			if err := db.Snapshot(); err != nil {
				t.Fatal(err)
			}
			round(40)
			if tc.midSnapshot {
				// A crash between the blocks and the head: blocks newer than the head.
				c.wmu.Lock()
				h, written, err := c.writeCatalog(c.seq)
				c.wmu.Unlock()
				if err != nil || written == 0 || written > int(h.blocks)/2 {
					t.Fatalf("catalog: %d of %d blocks written, err %v", written, h.blocks, err)
				}
			}
			crashClose(db)
			if tc.breaks != nil {
				b, err := bolt.Open(dir+"/"+FileName, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				b.Update(func(tx *bolt.Tx) error {
					tc.breaks(t, tx.Bucket(bucketCollections).Bucket([]byte("a")))
					return nil
				})
				b.Close()
			}

			load := func(catalog bool) (loadedState, string, string) {
				t.Helper()
				db, err := Open(dir, &Options{NoSync: true, SnapshotInterval: -1, ExactThreshold: -1, Compression: tc.comp, ReadOnly: true})
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				c, _ := db.Collection("a")
				return stateOf(c), c.itemsFrom, c.loadedFrom
			}
			got, from, graphFrom := load(true)
			if from != tc.from || graphFrom != "snapshot+replay" {
				t.Fatalf("items from %s, graph from %s; want %s and snapshot+replay", from, graphFrom, tc.from)
			}
			// The reference: the same file with the catalog out of reach (no log ids: records).
			b, err := bolt.Open(dir+"/"+FileName, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			b.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketCollections).Bucket([]byte("a")).Delete(keyCatalog) })
			b.Close()
			want, from, _ := load(false)
			if from != "records" {
				t.Fatalf("reference from %s", from)
			}
			if len(want.ByID) != tc.n-2*3+2*(1+27-1) {
				t.Fatalf("%d items", len(want.ByID))
			}
			v := reflect.ValueOf(want)
			for i := range v.NumField() {
				name := v.Type().Field(i).Name
				g, w := reflect.ValueOf(got).Field(i), v.Field(i)
				if reflect.DeepEqual(g.Interface(), w.Interface()) {
					continue
				}
				if g.Kind() != reflect.Slice || g.Len() != w.Len() {
					t.Errorf("%s differs from the records' load (lengths %d, %d)", name, g.Len(), w.Len())
					continue
				}
				for j := range g.Len() {
					if !reflect.DeepEqual(g.Index(j).Interface(), w.Index(j).Interface()) {
						t.Errorf("%s[%d] differs from the records' load:\ncatalog %v\nrecords %v", name, j, g.Index(j), w.Index(j))
						break
					}
				}
			}
		})
	}
}
