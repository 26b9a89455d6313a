package index

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lookalike/lookalike/internal/bench/synth"
)

// TestBackupFile: the snapshot is a complete, valid data file, staged without leaving a file in
// the data directory; debris of an earlier crash mid-copy is removed once it is old.
func TestBackupFile(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir, nil)
	c, err := db.CreateCollection("x", CollectionConfig{Fingerprint: "f", Dims: 4})
	if err != nil {
		t.Fatal(err)
	}
	upsertAll(t, c, mkItems(synth.Clustered(300, 4, 5, 0.1, 1), "i", nil), 50)
	stale := filepath.Join(dir, backupPrefix+"crashed.db")
	fresh := filepath.Join(dir, backupPrefix+"in-progress.db")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleBackup)
	os.Chtimes(stale, old, old)

	f, n, err := db.BackupFile()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 2 || names[0] != backupPrefix+"in-progress.db" || names[1] != FileName {
		t.Errorf("data directory holds %v, want only the data file and the recent snapshot", names)
	}
	data, err := io.ReadAll(f)
	if err != nil || int64(len(data)) != n || n == 0 {
		t.Fatalf("read %d of %d bytes: %v", len(data), n, err)
	}
	restored := t.TempDir()
	if err := os.WriteFile(filepath.Join(restored, FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(filepath.Join(restored, FileName)); err != nil {
		t.Fatal(err)
	}
	db2 := openTestDB(t, restored, nil)
	c2, err := db2.Collection("x")
	if err != nil || c2.Info().Count != 300 {
		t.Fatalf("restored: %v %+v", err, c2)
	}
}
