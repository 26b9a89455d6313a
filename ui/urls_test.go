package ui_test

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// urlScript runs ui/js/api.js in Node with fetch stubbed: for each id it records the URL the page
// would request (to get, delete and find items similar to it) and the path a WHATWG URL parser
// (what browsers use) makes of it; ids the page refuses record the error instead.
const urlScript = `
import * as m from './api.mjs';
const { api } = m;
const ids = JSON.parse(process.argv[2]);
const sent = [];
globalThis.fetch = async (url, init) => {
  sent.push({ url: String(url), method: (init && init.method) || 'GET' });
  return { ok: true, status: 200, text: async () => '{}', headers: { get: () => null } };
};
const out = [];
for (const id of ids) {
  sent.length = 0;
  let error = '';
  try {
    await api.item('default', id);
    await api.deleteItem('default', id);
    await api.similar('default', id, { k: 5 });
  } catch (e) {
    error = e.code || String(e);
  }
  out.push({
    id, error,
    requests: sent.map((r) => ({ method: r.method, url: r.url, path: new URL(r.url, 'http://h:8080/').pathname })),
  });
}
const c = m.paths ? m.paths.collection('dupes-ui') : 'no paths export';
out.push({ id: 'collection', error: '', requests: [{ method: 'GET', url: c, path: new URL(c, 'http://h/').pathname }] });
console.log(JSON.stringify(out));
`

// TestURLBuilding checks, without a browser, that the page's API URLs survive a browser's URL
// parsing: ids holding /, ?, #, % or dots stay one path segment naming the same item, and ids that
// are dot segments are refused before any request (a browser resolves /items/.. to the
// collection). It also checks that no module but api.js assembles an API URL by hand.
func TestURLBuilding(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the URL-building test runs the page's api.js in Node")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "api.mjs"), []byte(readAsset(t, "js/api.js")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "run.mjs"), []byte(urlScript), 0o600); err != nil {
		t.Fatal(err)
	}
	good := []string{"sku-1", "a/b", "../x", "x/..", "./x", "...", "..x", "q?x=1", "h#frag", "100%", "%2e%2e", "%2F",
		"a b+c", "名前/ürün", "trailing/", "back\\slash"}
	refused := []string{".", "..", ""}
	arg, _ := json.Marshal(append(append([]string{}, good...), refused...))
	cmd := exec.Command(node, filepath.Join(dir, "run.mjs"), string(arg))
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var results []struct {
		ID       string
		Error    string
		Requests []struct{ Method, URL, Path string }
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("node output: %v\n%s", err, out)
	}
	byID := map[string]int{}
	for i, r := range results {
		byID[r.ID] = i
	}
	for _, id := range good {
		r := results[byID[id]]
		if r.Error != "" || len(r.Requests) != 3 {
			t.Errorf("id %q: error %q, %d requests", id, r.Error, len(r.Requests))
			continue
		}
		for _, req := range r.Requests {
			want := "/v1/collections/default/items/"
			rest, ok := strings.CutPrefix(req.Path, want)
			if req.Path != strings.SplitN(req.URL, "?", 2)[0] || !ok {
				t.Errorf("id %q: %s %s becomes %s in a browser", id, req.Method, req.URL, req.Path)
				continue
			}
			seg, _, _ := strings.Cut(rest, "/")
			if got, err := url.PathUnescape(seg); err != nil || got != id {
				t.Errorf("id %q: %s %s names item %q", id, req.Method, req.URL, got)
			}
		}
	}
	for _, id := range refused {
		if r := results[byID[id]]; r.Error != "invalid_id" || len(r.Requests) != 0 {
			t.Errorf("id %q: error %q after %d requests, want invalid_id before any request", id, r.Error, len(r.Requests))
		}
	}
	if r := results[byID["collection"]]; r.Requests[0].Path != "/v1/collections/dupes-ui" {
		t.Errorf("collection path %q", r.Requests[0].Path)
	}

	byHand := regexp.MustCompile("[`'\"]/v1/collections/\\$\\{")
	for _, js := range assetsWithExt(t, ".js") {
		if js == "js/api.js" {
			continue
		}
		for _, line := range strings.Split(readAsset(t, js), "\n") {
			if byHand.MatchString(line) {
				t.Errorf("%s builds an API URL by hand (use paths from api.js): %s", js, strings.TrimSpace(line))
			}
		}
	}
}
