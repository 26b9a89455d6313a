package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/client"
)

// TestCLIRebuild: on a data directory, rebuild into another profile (the config's is ms317) writes plain progress lines
// (stderr is not a terminal), switches with --switch, and search then answers from the new
// generation; bad targets exit 2 (usage) or 1, and a second rebuild while one is switched is refused.
func TestCLIRebuild(t *testing.T) {
	catalog, uk := catalogFixture(t)
	os.Remove(filepath.Join(catalog, "obj1", "corrupt.jpg"))
	data := filepath.Join(t.TempDir(), "data")
	if code, out, errOut := runCLI(t, "index", "--data", data, "--quiet", catalog); code != 0 {
		t.Fatalf("index: exit %d: %s %s", code, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "--model ID and/or --profile P"},
		{[]string{"--profile", "sharp"}, 2, "--profile"},
		{[]string{"--model", "nope"}, 1, `no model "nope"`},
		{[]string{"--profile", "ms317"}, 1, "already holds vectors"},
		{[]string{"--collection", "nothing", "--profile", "fast"}, 1, "nothing"},
	} {
		code, out, errOut := runCLI(t, append([]string{"rebuild", "--data", data}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("rebuild %v: exit %d (want %d), %q does not say %q (stdout %q)", tc.args, code, tc.code, errOut, tc.want, out)
		}
	}

	code, out, errOut := runCLI(t, "rebuild", "--data", data, "--profile", "fast", "--switch")
	if code != 0 || !strings.Contains(out, "default now answers from default@2") || !strings.Contains(out, "8 items copied (0 from thumbnails") {
		t.Fatalf("rebuild --switch: exit %d: %s %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "rebuild default → default@2: ") || !strings.Contains(errOut, "ready 8/8 items (100%)") {
		t.Errorf("no plain progress lines on a non-terminal: %q", errOut)
	}
	var sr searchOutput
	code, out, errOut = runCLI(t, "search", "--data", data, "-k", "4", "--json", filepath.Join(uk, "ukbench00005.jpg"))
	if err := json.Unmarshal([]byte(out), &sr); code != 0 || err != nil || len(sr.Results) != 4 || sr.Results[0].ID != "obj1/ukbench00005" {
		t.Fatalf("search after the switch: exit %d %v %s %s", code, err, out, errOut)
	}
	code, out, errOut = runCLI(t, "rebuild", "--data", data, "--profile", "ms448", "--json")
	if code != 1 || !strings.Contains(errOut, "that is switched") {
		t.Errorf("rebuild while the last one is switched: exit %d %s %s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "stats", "--data", data)
	if !strings.Contains(out, "default@2") {
		t.Errorf("stats after the rebuild: %s", out)
	}
}

// TestE2ERebuildCLIThroughServer: rebuild --server starts the rebuild through the API and follows
// it to ready (--json prints the job); run again with --switch it follows the same (ready) rebuild
// and switches; an unknown model is the API's 400, exit 1.
func TestE2ERebuildCLIThroughServer(t *testing.T) {
	catalog, _ := catalogFixture(t)
	os.Remove(filepath.Join(catalog, "obj1", "corrupt.jpg"))
	srv := startServer(t, filepath.Join(t.TempDir(), "data"))
	server := []string{"--server", srv.url}
	if code, out, errOut := runCLI(t, append([]string{"index", "--quiet", catalog}, server...)...); code != 0 {
		t.Fatalf("index: exit %d: %s %s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, append([]string{"rebuild", "--model", "nope"}, server...)...)
	if code != 1 || !strings.Contains(errOut, "unknown_model") {
		t.Errorf("rebuild --model nope: exit %d %s %s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, append([]string{"rebuild", "--profile", "fast", "--json"}, server...)...)
	var j client.Rebuild
	if err := json.Unmarshal([]byte(out), &j); code != 0 || err != nil || j.State != client.RebuildReady || j.Copied != 8 || j.To != "default@2" || j.Profile != "fast" {
		t.Fatalf("rebuild --json: exit %d %v: %s %s", code, err, out, errOut)
	}
	code, out, errOut = runCLI(t, append([]string{"rebuild", "--profile", "fast", "--switch"}, server...)...)
	if code != 0 || !strings.Contains(errOut, "following the rebuild") || !strings.Contains(out, "default now answers from default@2") {
		t.Fatalf("rebuild --switch: exit %d: %s %s", code, out, errOut)
	}
}
