package eval

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/lookalike/lookalike/internal/locate"
)

// TestFolderReadsGroundTruthFiles: `eval --dataset DIR` on the shared benchmark folders reads
// their own ground truth (GROUPS.txt, gt/) as the keywords do, instead of finding no group; a
// folder of sub-folders is grouped by sub-folder; a flat folder without ground truth says why.
func TestFolderReadsGroundTruthFiles(t *testing.T) {
	uk, err := locate.Dir("ukbench", locate.DatasetDirs())
	if err != nil {
		t.Skipf("UKBench subset not found: %v", err)
	}
	ox, err := locate.Dir("oxford5k-subset", locate.DatasetDirs())
	if err != nil {
		t.Skipf("Oxford subset not found: %v", err)
	}
	byKeyword, err := UKBench(uk)
	if err != nil {
		t.Fatal(err)
	}
	byFolder, err := Folder(uk, "")
	if err != nil {
		t.Fatalf("Folder(%s): %v", uk, err)
	}
	if len(byFolder.Queries) != len(byKeyword.Queries) || len(byFolder.Database) != len(byKeyword.Database) || !byFolder.NS || !byFolder.IncludeSelf {
		t.Errorf("UKBench folder: %d queries, %d items, NS %v; the keyword gives %d, %d",
			len(byFolder.Queries), len(byFolder.Database), byFolder.NS, len(byKeyword.Queries), len(byKeyword.Database))
	}
	oxKeyword, err := Oxford(ox)
	if err != nil {
		t.Fatal(err)
	}
	if oxFolder, err := Folder(ox, ""); err != nil || len(oxFolder.Queries) != len(oxKeyword.Queries) || !oxFolder.OxfordAP {
		t.Errorf("Oxford folder: %v", err)
	}

	// Sub-folders are groups; a lone photo in the root is a distractor.
	tmp := t.TempDir()
	photo, err := os.ReadFile(filepath.Join(uk, "ukbench00000.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a/1.jpg", "a/2.jpg", "b/3.jpg", "b/4.jpg", "b/5.jpg", "lone.jpg"} {
		os.MkdirAll(filepath.Join(tmp, "groups", filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(tmp, "groups", p), photo, 0o644)
	}
	ds, err := Folder(filepath.Join(tmp, "groups"), "")
	if err != nil || len(ds.Queries) != 5 || len(ds.Database) != 6 || ds.NS {
		t.Errorf("sub-folders: %+v, %v", ds, err)
	}
	os.MkdirAll(filepath.Join(tmp, "flat"), 0o755)
	os.WriteFile(filepath.Join(tmp, "flat", "x.jpg"), photo, 0o644)
	if _, err := Folder(filepath.Join(tmp, "flat"), ""); !errors.Is(err, ErrDataset) {
		t.Errorf("flat folder without ground truth: %v, want ErrDataset", err)
	}
}
