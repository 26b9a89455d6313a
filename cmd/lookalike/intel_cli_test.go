package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/intel"
)

// lookalike dupes and lookalike tag run package intel offline on a data directory.
func TestCLIDupesAndTag(t *testing.T) {
	catalog, uk := catalogFixture(t)
	data := filepath.Join(t.TempDir(), "data")
	if code, out, errOut := runCLI(t, "index", "--data", data, "--allow-failures", catalog); code != 0 { // the fixture holds one corrupt photo
		t.Fatalf("index exit %d: %s %s", code, out, errOut)
	}
	var dupes struct {
		Tier     string             `json:"tier"`
		Clusters []intel.DupCluster `json:"clusters"`
	}
	code, out, errOut := runCLI(t, "dupes", "--data", data, "--tier", "similar", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &dupes) != nil || dupes.Tier != "similar" {
		t.Fatalf("dupes: %d %s %s", code, out, errOut)
	}
	seen := map[string]bool{}
	for _, cl := range dupes.Clusters {
		for _, m := range cl.Items {
			if seen[m.ID] {
				t.Errorf("%s in two clusters: %s", m.ID, out)
			}
			seen[m.ID] = true
		}
	}
	if code, out, _ = runCLI(t, "dupes", "--data", data); code != 0 || !strings.Contains(out, "clusters at tier near or above") {
		t.Fatalf("dupes (text): %d %s", code, out)
	}
	if code, _, errOut = runCLI(t, "dupes", "--data", data, "--tier", "fuzzy"); code == 0 || !strings.Contains(errOut, "tier") {
		t.Fatalf("dupes --tier fuzzy: %d %s", code, errOut)
	}
	// The fixture has no metadata: nothing to suggest, nothing written, and the report says so.
	var rep intel.TagReport
	code, out, errOut = runCLI(t, "tag", "--data", data, "--all", "--dry-run", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Scanned != 8 || rep.Updated != 0 || !rep.DryRun {
		t.Fatalf("tag --all: %d %s %s", code, out, errOut)
	}
	if code, out, errOut = runCLI(t, "tag", "--data", data, filepath.Join(uk, "ukbench00001.jpg")); code != 0 || !strings.Contains(out, "labels:") {
		t.Fatalf("tag photo: %d %s %s", code, out, errOut)
	}
}
