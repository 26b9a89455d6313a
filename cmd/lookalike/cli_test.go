package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/internal/locate"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb, []string{"LOOKALIKE_LOG_LEVEL=warn"})
	return code, out.String(), errb.String()
}

func catalogFixture(t *testing.T) (dir string, photos string) {
	t.Helper()
	uk, err := locate.Dir("ukbench", locate.DatasetDirs())
	if err != nil {
		t.Skipf("UKBench photos not found: %v", err)
	}
	dir = filepath.Join(t.TempDir(), "catalog")
	os.MkdirAll(filepath.Join(dir, "obj0"), 0o755)
	os.MkdirAll(filepath.Join(dir, "obj1"), 0o755)
	for i := 0; i < 8; i++ {
		name := "ukbench0000" + string(rune('0'+i)) + ".jpg"
		b, err := os.ReadFile(filepath.Join(uk, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "obj"+string(rune('0'+i/4)), name), b, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "obj1", "corrupt.jpg"), []byte("\xff\xd8\xff\xe0 truncated"), 0o644)
	return dir, uk
}

func TestCLICatalogRoundTrip(t *testing.T) {
	catalog, uk := catalogFixture(t)
	data := filepath.Join(t.TempDir(), "data")

	type indexReport struct {
		Added, Skipped, Failed int
		Failures               []struct{ ID, Path, Error string }
	}
	var rep indexReport
	// A failed item does not stop the load, but the exit status says the load is partial.
	code, out, errOut := runCLI(t, "index", "--data", data, "--json", catalog)
	if code != 1 || !strings.Contains(errOut, "1 of 9 items failed") {
		t.Fatalf("index with a corrupt photo: exit %d, want 1: %s %s", code, out, errOut)
	}
	json.Unmarshal([]byte(out), &rep)
	if rep.Added != 8 || rep.Failed != 1 || rep.Failures[0].ID != "obj1/corrupt" {
		t.Fatalf("first index: %s", out)
	}
	// Re-running skips unchanged items: a bulk load is resumable and idempotent.
	code, out, errOut = runCLI(t, "index", "--data", data, "--json", "--allow-failures", catalog)
	rep = indexReport{}
	json.Unmarshal([]byte(out), &rep)
	if code != 0 || rep.Added != 0 || rep.Skipped != 8 || rep.Failed != 1 {
		t.Fatalf("second index with --allow-failures: exit %d, %s %s", code, out, errOut)
	}
	// The text summary names the failed file once (no log line repeating it).
	code, out, errOut = runCLI(t, "index", "--data", data, "--quiet", catalog)
	n := 0
	for _, line := range strings.Split(out+errOut, "\n") {
		if strings.Contains(line, "corrupt.jpg") {
			n++
		}
	}
	if code != 1 || n != 1 || !strings.Contains(out, "0 added, 8 unchanged, 1 failed") {
		t.Fatalf("text summary: exit %d, the corrupt file on %d lines, want 1:\n%s%s", code, n, out, errOut)
	}

	var sr searchOutput
	code, out, errOut = runCLI(t, "search", "--data", data, "-k", "4", "--json", filepath.Join(uk, "ukbench00005.jpg"))
	if code != 0 {
		t.Fatalf("search exit %d: %s", code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &sr); err != nil || len(sr.Results) != 4 || sr.Results[0].ID != "obj1/ukbench00005" {
		t.Fatalf("search: %v %s", err, out)
	}
	for _, r := range sr.Results {
		if !strings.HasPrefix(r.ID, "obj1/") {
			t.Errorf("top 4 for an obj1 photo holds %s: %s", r.ID, out)
		}
	}
	if _, ok := sr.TimingsMS["inference"]; !ok {
		t.Errorf("no inference timing: %s", out)
	}
	if sr.Rerank != "qe+kr" {
		t.Errorf("search re-ranked by %q, want the default qe+kr", sr.Rerank)
	}

	code, out, _ = runCLI(t, "similar", "--data", data, "-k", "3", "--json", "obj0/ukbench00000")
	sr = searchOutput{}
	if json.Unmarshal([]byte(out), &sr); code != 0 || len(sr.Results) != 3 || !strings.HasPrefix(sr.Results[0].ID, "obj0/") {
		t.Fatalf("similar: %d %s", code, out)
	}
	if sr.Rerank != "none" {
		t.Errorf("similar re-ranked by %q, want the default none", sr.Rerank)
	}
	code, out, _ = runCLI(t, "similar", "--data", data, "-k", "3", "--rerank", "kr", "--json", "obj0/ukbench00000")
	sr = searchOutput{}
	if json.Unmarshal([]byte(out), &sr); code != 0 || len(sr.Results) != 3 || sr.Rerank != "kr" {
		t.Fatalf("similar --rerank kr: %d %s", code, out)
	}
	if code, out, _ = runCLI(t, "delete", "--data", data, "obj0/ukbench00000", "nope"); code != 0 || !strings.Contains(out, "deleted 1 of 2") {
		t.Fatalf("delete: %d %s", code, out)
	}
	code, out, _ = runCLI(t, "stats", "--data", data, "--json")
	if code != 0 || !strings.Contains(out, `"Count": 7`) && !strings.Contains(out, `"count": 7`) {
		t.Fatalf("stats: %d %s", code, out)
	}
	if code, _, errOut = runCLI(t, "similar", "--data", data, "obj0/ukbench00000"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("similar to a deleted item: %d %s", code, errOut)
	}
}

func TestCLIEmbedJSON(t *testing.T) {
	_, uk := catalogFixture(t)
	code, out, errOut := runCLI(t, "embed", filepath.Join(uk, "ukbench00000.jpg"), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var e embedOutput
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatal(err)
	}
	if e.Dims != 1280 || len(e.Embedding) != 1280 || len(e.Labels) != 5 || e.Model == "" || e.Path == "" {
		t.Fatalf("embed --json: dims %d, %d values, %d labels, model %q", e.Dims, len(e.Embedding), len(e.Labels), e.Model)
	}
}

func TestCLIUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"embed"}, 2, "IMAGE"},
		{[]string{"search", "--data", t.TempDir()}, 2, "one IMAGE"},
		{[]string{"search", "-k", "0", "x.jpg"}, 2, "-k"},
		{[]string{"search", "--filter", "price <<< 1", "x.jpg"}, 2, "filter"},
		{[]string{"similar", "--rerank", "best", "sku-1"}, 2, "--rerank"},
		{[]string{"eval", "--dataset", "ukbench", "--rerank", "qe+"}, 2, "--rerank"},
		{[]string{"bench", "nothing"}, 2, "unknown bench"},
		{[]string{"serve", "--config", "/nonexistent.yaml"}, 1, "nonexistent"},
		{[]string{"embed", "/nonexistent.jpg"}, 1, "failed"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Fatalf("exit %d (want %d), output %q does not mention %q", code, tc.code, out+errOut, tc.want)
			}
		})
	}
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "lookalike ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

// TestCLIProfile: index --profile creates a collection with that descriptor profile; search uses
// it; indexing into it under another profile is refused, as is an unknown profile.
func TestCLIProfile(t *testing.T) {
	catalog, uk := catalogFixture(t)
	os.Remove(filepath.Join(catalog, "obj1", "corrupt.jpg"))
	data := filepath.Join(t.TempDir(), "data")
	if code, out, errOut := runCLI(t, "index", "--data", data, "--quiet", "--profile", "ms317", catalog); code != 0 {
		t.Fatalf("index --profile ms317: exit %d: %s %s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, "stats", "--data", data)
	if code != 0 || !strings.Contains(out, "@ms317") {
		t.Fatalf("stats: the fingerprint should name the profile: exit %d %s %s", code, out, errOut)
	}
	var sr searchOutput
	code, out, errOut = runCLI(t, "search", "--data", data, "-k", "4", "--json", filepath.Join(uk, "ukbench00005.jpg"))
	if err := json.Unmarshal([]byte(out), &sr); code != 0 || err != nil || len(sr.Results) != 4 || sr.Results[0].ID != "obj1/ukbench00005" {
		t.Fatalf("search: exit %d %v %s %s", code, err, out, errOut)
	}
	for _, tc := range []struct{ profile, want string }{
		{"fast", "holds vectors of profile ms317, not fast"},
		{"sharp", "profile \"sharp\""},
	} {
		code, out, errOut = runCLI(t, "index", "--data", data, "--quiet", "--profile", tc.profile, catalog)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("index --profile %s into the ms317 collection: exit %d, want an error saying %q: %s %s", tc.profile, code, tc.want, out, errOut)
		}
	}
	if code, out, errOut = runCLI(t, "index", "--data", data, "--quiet", "--collection", "other", "--profile", "sharp", catalog); code == 0 || !strings.Contains(errOut, "sharp") {
		t.Errorf("index --profile sharp into a new collection: exit %d %s %s", code, out, errOut)
	}
}

// TestCLIReembed: a collection is embedded again from its source renditions into a collection of
// another profile, keeping ids and metadata, and searches there find the same objects.
func TestCLIReembed(t *testing.T) {
	catalog, uk := catalogFixture(t)
	os.Remove(filepath.Join(catalog, "obj1", "corrupt.jpg"))
	data := filepath.Join(t.TempDir(), "data")
	if code, out, errOut := runCLI(t, "index", "--data", data, "--quiet", catalog); code != 0 {
		t.Fatalf("index: exit %d: %s %s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, "reembed", "--data", data, "--into", "regional", "--profile", "ms317")
	if code != 0 || !strings.Contains(out, "8 stored, 0 failed") || !strings.Contains(out, "@ms317") {
		t.Fatalf("reembed: exit %d: %s %s", code, out, errOut)
	}
	var sr searchOutput
	code, out, errOut = runCLI(t, "search", "--data", data, "--collection", "regional", "-k", "4", "--json", filepath.Join(uk, "ukbench00005.jpg"))
	if err := json.Unmarshal([]byte(out), &sr); code != 0 || err != nil || len(sr.Results) != 4 {
		t.Fatalf("search the re-embedded collection: exit %d %v %s %s", code, err, out, errOut)
	}
	for _, r := range sr.Results {
		if !strings.HasPrefix(r.ID, "obj1/") {
			t.Errorf("top 4 for an obj1 photo holds %s: %s", r.ID, out)
		}
	}
	// Re-running skips what is stored; a collection without renditions says so.
	if code, out, _ = runCLI(t, "reembed", "--data", data, "--into", "regional", "--profile", "ms317"); code != 0 || !strings.Contains(out, "8 stored") {
		t.Errorf("second reembed: exit %d %s", code, out)
	}
	bare := filepath.Join(t.TempDir(), "bare")
	runCLI(t, "index", "--data", bare, "--quiet", catalog, "--config", writeConfig(t, "limits:\n  source_size: 0\n"))
	if code, out, _ = runCLI(t, "reembed", "--data", bare, "--into", "x"); code == 0 || !strings.Contains(out, "no source rendition") {
		t.Errorf("reembed without renditions: exit %d %s", code, out)
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lookalike.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
