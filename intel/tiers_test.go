package intel

import (
	"context"
	"errors"
	"testing"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// TestFindDuplicateReportsAFailedCheck: a check that cannot search (here: the collection is
// closed) is an error, never "no duplicate", so that ingest does not store a photo whose
// duplicate it could not look for.
func TestFindDuplicateReportsAFailedCheck(t *testing.T) {
	db, err := index.Open(t.TempDir(), &index.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	col, err := db.CreateCollection("c", index.CollectionConfig{Fingerprint: "f", Dims: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := col.Upsert(context.Background(), index.Item{ID: "a", Vector: []float32{1, 0}}); err != nil {
		t.Fatal(err)
	}
	d := NewDetector(config.Intel{NearDuplicateScore: 0.9, SimilarScore: 0.8}, nil)
	if m, err := d.FindDuplicate(context.Background(), col, "new", []float32{0, 1}, nil); m != nil || err != nil {
		t.Fatalf("open collection, no duplicate: %+v %v", m, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	m, err := d.FindDuplicate(context.Background(), col, "new", []float32{1, 0}, nil)
	if m != nil || !errors.Is(err, index.ErrClosed) {
		t.Fatalf("closed collection: %+v %v, want index.ErrClosed", m, err)
	}
}
