package index

import (
	"errors"
	"testing"
)

// TestDotSegmentIDsRefused: "." and ".." are refused by the index itself (the API refuses them too),
// since every URL built for such an item resolves to its parent in a browser.
func TestDotSegmentIDsRefused(t *testing.T) {
	db := openTestDB(t, "", nil)
	c, err := db.CreateCollection("c", CollectionConfig{Fingerprint: "f", Dims: 4})
	if err != nil {
		t.Fatal(err)
	}
	vec := []float32{1, 0, 0, 0}
	for _, id := range []string{".", ".."} {
		if err := c.Upsert(ctx, Item{ID: id, Vector: vec}); !errors.Is(err, ErrInvalidItem) {
			t.Errorf("id %q: %v, want ErrInvalidItem", id, err)
		}
	}
	for _, id := range []string{"...", "./x", "x/..", ".x", "..x"} {
		if err := c.Upsert(ctx, Item{ID: id, Vector: vec}); err != nil {
			t.Errorf("id %q: %v", id, err)
		}
	}
	if n := c.Info().Count; n != 5 {
		t.Errorf("count %d, want 5", n)
	}
}
