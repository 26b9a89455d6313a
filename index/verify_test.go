package index

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A damaged data file is refused by Open with ErrStorage instead of faulting or being re-initialised.
func TestOpenRefusesDamagedFile(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	col, err := db.CreateCollection("c", CollectionConfig{Fingerprint: "fp", Dims: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := col.Upsert(t.Context(), Item{ID: strings.Repeat("x", i+1), Vector: []float32{1, float32(i), 0, 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"cut in half":        good[:len(good)/2],
		"only the metas":     good[:2*4096],
		"garbage":            []byte(strings.Repeat("not a database ", 1000)),
		"both metas smashed": append(make([]byte, 2*4096), good[2*4096:]...),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, FileName), data, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(d, &Options{NoSync: true}); err == nil || !strings.Contains(err.Error(), "damaged") {
				t.Fatalf("Open accepted a damaged file: %v", err)
			}
		})
	}
	if err := CheckFile(filepath.Join(dir, FileName)); err != nil {
		t.Fatalf("the intact file fails the check: %v", err)
	}
}
