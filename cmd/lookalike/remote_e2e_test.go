package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/client"
	"github.com/lookalike/lookalike/intel"
)

const (
	e2eReadKey  = "read-key-0123456789abcdef"
	e2eWriteKey = "write-key-0123456789abcdef"
)

// runCLIEnv is runCLI with extra environment entries.
func runCLIEnv(t *testing.T, environ []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb, append([]string{"LOOKALIKE_LOG_LEVEL=warn"}, environ...))
	return code, out.String(), errb.String()
}

// TestE2ECatalogThroughServer: while `lookalike serve` holds the data directory the catalog
// commands cannot open it, and say so pointing at --server; with --server and --key they do the
// same work through the API, with the same output and exit statuses: index (a failed photo, an
// idempotent re-run, a read-only key), search, similar, tag (one item, a photo, bulk), dupes,
// delete, stats.
func TestE2ECatalogThroughServer(t *testing.T) {
	catalog, uk := catalogFixture(t)
	data := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, data, "LOOKALIKE_AUTH_KEYS=read:"+e2eReadKey+",write:"+e2eWriteKey)
	// A manifest over the fixture's photos: category repeats, name is free text; ukbench00003 has no
	// category (bulk tagging fills it), corrupt.jpg fails.
	manifest := "id,path,category,name\n" +
		"a0,obj0/ukbench00000.jpg,mugs,Blue mug\n" + "a1,obj0/ukbench00001.jpg,mugs,Blue mug XL\n" +
		"a2,obj0/ukbench00002.jpg,mugs,Mug (side)\n" + "a3,obj0/ukbench00003.jpg,,Mug back\n" +
		"b4,obj1/ukbench00004.jpg,tins,Cookie tin\n" + "b5,obj1/ukbench00005.jpg,tins,Tin lid\n" +
		"b6,obj1/ukbench00006.jpg,tins,Round tin\n" + "b7,obj1/ukbench00007.jpg,tins,Tin, top\n" +
		"bad,obj1/corrupt.jpg,tins,Broken\n"
	manifest = strings.Replace(manifest, "Tin, top", `"Tin, top"`, 1)
	mpath := filepath.Join(catalog, "catalog.csv")
	if err := os.WriteFile(mpath, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	server := []string{"--server", srv.url}
	withKey := func(key string, args ...string) []string { return append(append(args, server...), "--key", key) }

	t.Run("data directory held", func(t *testing.T) {
		code, _, errOut := runCLI(t, "stats", "--data", data)
		if code != 1 || !strings.Contains(errOut, "held by another process") || !strings.Contains(errOut, "--server") || strings.Contains(errOut, "is a server using it") {
			t.Fatalf("stats on a held data directory: exit %d, %s", code, errOut)
		}
		if code, _, errOut = runCLI(t, append([]string{"stats", "--data", data}, server...)...); code != 2 || !strings.Contains(errOut, "exclude each other") {
			t.Fatalf("--data with --server: exit %d, %s", code, errOut)
		}
	})

	t.Run("healthcheck", func(t *testing.T) {
		// The image's HEALTHCHECK: ready is 0, nobody listening is 1; the port comes from server.addr.
		port := srv.url[strings.LastIndexByte(srv.url, ':')+1:]
		if code, out, errOut := runCLIEnv(t, []string{"LOOKALIKE_SERVER_ADDR=:" + port}, "healthcheck"); code != 0 || !strings.Contains(out, "ready") {
			t.Fatalf("healthcheck of a ready server: exit %d, %s %s", code, out, errOut)
		}
		if code, _, errOut := runCLI(t, "healthcheck", "--url", "http://127.0.0.1:1/readyz", "--timeout", "2s"); code != 1 || errOut == "" {
			t.Fatalf("healthcheck with nobody listening: exit %d, %s", code, errOut)
		}
	})

	t.Run("keys", func(t *testing.T) {
		if code, _, errOut := runCLI(t, append([]string{"stats"}, server...)...); code != 1 || !strings.Contains(errOut, ": 401 ") || !strings.Contains(errOut, "--key") {
			t.Fatalf("no key: exit %d, %s", code, errOut)
		}
		code, out, errOut := runCLI(t, withKey(e2eReadKey, "index", "--quiet", mpath)...)
		if code != 1 || !strings.Contains(errOut, ": 403 ") {
			t.Fatalf("index with a read key: exit %d, %s %s", code, out, errOut)
		}
	})

	t.Run("index", func(t *testing.T) {
		var rep struct {
			Added, Skipped, Failed int
			Failures               []struct{ ID, Path, Error string }
		}
		code, out, errOut := runCLI(t, withKey(e2eWriteKey, "index", "--json", mpath)...)
		if code != 1 || !strings.Contains(errOut, "1 of 9 items failed") || json.Unmarshal([]byte(out), &rep) != nil {
			t.Fatalf("index with a corrupt photo: exit %d, want 1: %s %s", code, out, errOut)
		}
		if rep.Added != 8 || rep.Failed != 1 || rep.Failures[0].ID != "bad" || !strings.Contains(rep.Failures[0].Error, "corrupt") {
			t.Fatalf("first index: %s", out)
		}
		// Again, the API key from the environment: nothing changed, nothing stored twice.
		code, out, errOut = runCLIEnv(t, []string{apiKeyEnv + "=" + e2eWriteKey}, append([]string{"index", "--quiet", "--allow-failures", mpath}, server...)...)
		if code != 0 || !strings.Contains(out, "0 added, 8 unchanged, 1 failed") {
			t.Fatalf("re-run: exit %d, %s %s", code, out, errOut)
		}
	})

	t.Run("search and similar", func(t *testing.T) {
		var sr searchOutput
		code, out, errOut := runCLI(t, withKey(e2eReadKey, "search", "-k", "4", "--json", "--filter", `category = "tins"`, filepath.Join(uk, "ukbench00005.jpg"))...)
		if code != 0 || json.Unmarshal([]byte(out), &sr) != nil || len(sr.Results) != 4 || sr.Results[0].ID != "b5" || sr.Model == "" {
			t.Fatalf("search: exit %d, %s %s", code, out, errOut)
		}
		code, out, _ = runCLI(t, withKey(e2eReadKey, "similar", "-k", "1", "a0")...)
		if code != 0 || !strings.Contains(out, "(1 result,") || !strings.Contains(out, "  a") {
			t.Fatalf("similar (text): exit %d, %s", code, out)
		}
		if code, _, errOut = runCLI(t, withKey(e2eReadKey, "similar", "nope")...); code != 1 || !strings.Contains(errOut, "404 item_not_found") {
			t.Fatalf("similar to an unknown id: exit %d, %s", code, errOut)
		}
	})

	t.Run("tag", func(t *testing.T) {
		var sug struct {
			Suggestions map[string][]intel.TagSuggestion `json:"suggestions"`
		}
		code, out, errOut := runCLI(t, withKey(e2eReadKey, "tag", "--json", "--id", "a3")...)
		if code != 0 || json.Unmarshal([]byte(out), &sug) != nil {
			t.Fatalf("tag --id: exit %d, %s %s", code, out, errOut)
		}
		if c := sug.Suggestions["category"]; len(c) == 0 || c[0].Value != "mugs" {
			t.Errorf("category suggestions %s, want mugs first", out)
		}
		if n, ok := sug.Suggestions["name"]; ok {
			t.Errorf("free-text name suggested: %+v", n)
		}
		if code, out, _ = runCLI(t, withKey(e2eReadKey, "tag", filepath.Join(uk, "ukbench00006.jpg"))...); code != 0 || !strings.Contains(out, "category: tins") || !strings.Contains(out, "labels:") {
			t.Errorf("tag photo: exit %d, %s", code, out)
		}
		code, out, errOut = runCLI(t, withKey(e2eWriteKey, "tag", "--all", "--min-confidence", "0.5")...)
		if code != 0 || !strings.Contains(out, "a3\tcategory = mugs") || !strings.Contains(out, "updated 1; values written per field: category 1") {
			t.Fatalf("tag --all: exit %d, %s %s", code, out, errOut)
		}
	})

	t.Run("dupes", func(t *testing.T) {
		var d struct {
			Tier     string             `json:"tier"`
			Clusters []intel.DupCluster `json:"clusters"`
		}
		code, out, errOut := runCLI(t, withKey(e2eReadKey, "dupes", "--tier", "similar", "--json")...)
		if code != 0 || json.Unmarshal([]byte(out), &d) != nil || d.Tier != "similar" || len(d.Clusters) == 0 {
			t.Fatalf("dupes: exit %d, %s %s", code, out, errOut)
		}
		if code, _, errOut = runCLI(t, withKey(e2eReadKey, "dupes", "--tier", "bogus")...); code != 2 || !strings.Contains(errOut, "want exact, near or similar") {
			t.Fatalf("dupes --tier bogus: exit %d, %s", code, errOut)
		}
	})

	t.Run("delete and stats", func(t *testing.T) {
		if code, out, errOut := runCLI(t, withKey(e2eWriteKey, "delete", "b7", "nope")...); code != 0 || !strings.Contains(out, "deleted 1 of 2") {
			t.Fatalf("delete: exit %d, %s %s", code, out, errOut)
		}
		var st struct {
			Collections []client.Collection `json:"collections"`
		}
		code, out, errOut := runCLI(t, withKey(e2eReadKey, "stats", "--json")...)
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Collections) != 1 || st.Collections[0].Count != 7 {
			t.Fatalf("stats: exit %d, %s %s", code, out, errOut)
		}
		if code, out, _ = runCLI(t, withKey(e2eReadKey, "stats")...); code != 0 || !strings.Contains(out, "server "+srv.url) || !strings.Contains(out, "default ") {
			t.Fatalf("stats (text): exit %d, %s", code, out)
		}
	})
}
