package api

// The HTTP edge (issue 12, "nothing lost, nothing let in"; issue 16): ids that are dot segments,
// strict routing, an explicit confirmation to drop a collection, URLs that survive a browser's
// dot-segment resolution, and 405 with Allow for a wrong method on an existing path.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// victimServer starts a server with a collection "victim" holding one item "keep", so that losing
// it shows; it returns the server and the photo it used.
func victimServer(t *testing.T) (*testServer, []byte) {
	t.Helper()
	ts := newTestServer(t, nil)
	img := reencode(t, photo(t, ukName(3)), 0.25, 70)
	if r := do(t, "POST", ts.url+"/v1/collections", "application/json", strings.NewReader(`{"name":"victim"}`)); r.status != 201 {
		t.Fatalf("create victim: %d %s", r.status, r.body)
	}
	body, ct := multipartBody(t, part{"image", "x.jpg", img}, part{"id", "", []byte("keep")})
	if r := do(t, "POST", ts.url+"/v1/collections/victim/items", ct, body); r.status != 201 {
		t.Fatalf("add to victim: %d %s", r.status, r.body)
	}
	return ts, img
}

func (ts *testServer) collectionCount(t *testing.T, name string) int {
	t.Helper()
	r := do(t, "GET", ts.url+"/v1/collections/"+name, "", nil)
	if r.status != 200 {
		t.Fatalf("collection %s is gone: %d %s", name, r.status, r.body)
	}
	var ci collectionJSON
	r.json(t, &ci)
	return ci.Count
}

// TestDotSegmentIDsRefused: an item named "." or ".." would get URLs (its page, its thumbnail, its
// delete) that a browser resolves to the collection itself or to another item, so the API refuses
// such ids however they arrive: multipart field, JSON body, NDJSON batch line, or a file name.
func TestDotSegmentIDsRefused(t *testing.T) {
	ts, jpg := victimServer(t)
	items := ts.url + "/v1/collections/victim/items"
	for _, id := range []string{".", ".."} {
		t.Run(id, func(t *testing.T) {
			body, ct := multipartBody(t, part{"image", "x.jpg", jpg}, part{"id", "", []byte(id)})
			if r := do(t, "POST", items, ct, body); r.status != 400 || r.errorCode(t) != "invalid_id" {
				t.Errorf("multipart: %d %s, want 400 invalid_id", r.status, r.body)
			}
			js, _ := json.Marshal(map[string]string{"id": id, "image": base64.StdEncoding.EncodeToString(jpg)})
			if r := do(t, "POST", items, "application/json", bytes.NewReader(js)); r.status != 400 || r.errorCode(t) != "invalid_id" {
				t.Errorf("json: %d %s, want 400 invalid_id", r.status, r.body)
			}
			r := do(t, "POST", items+":batch", "application/x-ndjson", bytes.NewReader(js))
			var br struct {
				Stored  int
				Results []struct {
					Status int
					Error  *Error
				}
			}
			r.json(t, &br)
			if br.Stored != 0 || len(br.Results) != 1 || br.Results[0].Status != 400 || br.Results[0].Error.Code != "invalid_id" {
				t.Errorf("batch: %d %s", r.status, r.body)
			}
		})
	}
	// A file named "..jpg" without an id field was stored as "."; the server now names photos by
	// their content and never by their file name.
	body, ct := multipartBody(t, part{"image", "..jpg", jpg})
	r := do(t, "POST", items, ct, body)
	var added struct{ Item struct{ ID string } }
	r.json(t, &added)
	if r.status != 201 || !strings.HasPrefix(added.Item.ID, "img-") {
		t.Errorf("file name ..jpg: %d %s, want 201 with a content id", r.status, r.body)
	}
	if n := ts.collectionCount(t, "victim"); n != 2 {
		t.Errorf("victim holds %d items, want 2", n)
	}
}

// TestTrailingSlashNeverDropsCollection: a trailing slash (what a browser makes of
// /items/.. and what a careless script sends) must never reach another route's handler.
func TestTrailingSlashNeverDropsCollection(t *testing.T) {
	ts, _ := victimServer(t)
	for _, p := range []string{"/v1/collections/victim/", "/v1/collections/victim/?confirm=victim", "/v1/collections/victim//"} {
		if r := do(t, "DELETE", ts.url+p, "", nil); r.status != 404 || r.errorCode(t) != "not_found" {
			t.Errorf("DELETE %s: %d %s, want 404 not_found", p, r.status, r.body)
		}
	}
	// Unresolved (curl --path-as-is), /items/.. names an item: the server resolves no dot segments.
	if r := do(t, "DELETE", ts.url+"/v1/collections/victim/items/..", "", nil); r.status != 404 || r.errorCode(t) != "item_not_found" {
		t.Errorf("DELETE /items/.. as is: %d %s, want 404 item_not_found", r.status, r.body)
	}
	for _, p := range []string{"/v1/collections/", "/v1/collections/victim/", "/v1/collections/victim/items/keep/"} {
		if r := do(t, "GET", ts.url+p, "", nil); r.status != 404 {
			t.Errorf("GET %s: %d %.200s, want 404", p, r.status, r.body)
		}
	}
	if n := ts.collectionCount(t, "victim"); n != 1 {
		t.Errorf("victim holds %d items, want 1", n)
	}
}

// TestDropCollectionNeedsConfirmation: dropping a collection names it twice (path and
// ?confirm=), so no single stray URL can do it.
func TestDropCollectionNeedsConfirmation(t *testing.T) {
	ts, _ := victimServer(t)
	for _, q := range []string{"", "?confirm=", "?confirm=other", "?confirm=VICTIM", "?confirm=victim%20"} {
		r := do(t, "DELETE", ts.url+"/v1/collections/victim"+q, "", nil)
		var e struct{ Error Error }
		r.json(t, &e)
		if r.status != 400 || e.Error.Code != "confirmation_required" || !strings.Contains(e.Error.Message, "confirm") {
			t.Errorf("DELETE victim%s: %d %s, want 400 confirmation_required naming the parameter", q, r.status, r.body)
		}
	}
	if n := ts.collectionCount(t, "victim"); n != 1 {
		t.Fatalf("victim holds %d items, want 1", n)
	}
	if r := do(t, "DELETE", ts.url+"/v1/collections/victim?confirm=victim", "", nil); r.status != 200 {
		t.Fatalf("confirmed drop: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", ts.url+"/v1/collections/victim", "", nil); r.status != 404 {
		t.Errorf("after drop: %d", r.status)
	}
	if r := do(t, "DELETE", ts.url+"/v1/collections/nope?confirm=nope", "", nil); r.status != 404 {
		t.Errorf("drop unknown: %d %s", r.status, r.body)
	}
}

// browserPath is the path a browser requests for href (WHATWG URL parsing): the fragment and the
// query are cut off, and ".", "..", and their percent-encoded forms are resolved.
func browserPath(href string) string {
	href, _, _ = strings.Cut(href, "#")
	href, _, _ = strings.Cut(href, "?")
	var out []string
	segs := strings.Split(strings.TrimPrefix(href, "/"), "/")
	for i, s := range segs {
		last := i == len(segs)-1
		switch strings.ToLower(s) {
		case "..", ".%2e", "%2e.", "%2e%2e":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		case ".", "%2e":
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

func TestBrowserPath(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/collections/victim/items/..":           "/v1/collections/victim/",
		"/v1/collections/victim/items/../thumbnail": "/v1/collections/victim/thumbnail",
		"/v1/collections/c/items/./thumbnail":       "/v1/collections/c/items/thumbnail",
		"/v1/collections/c/items/%2E%2e":            "/v1/collections/c/",
		"/v1/collections/c/items/a?b/thumbnail":     "/v1/collections/c/items/a",
		"/v1/collections/c/items/a#b/thumbnail":     "/v1/collections/c/items/a",
		"/v1/collections/c/items/a%2Fb/thumbnail":   "/v1/collections/c/items/a%2Fb/thumbnail",
	} {
		if got := browserPath(in); got != want {
			t.Errorf("browserPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestThumbnailURLSurvivesBrowsers: the thumbnail_url the API returns still names the item once a
// browser has parsed it, for ids holding /, ?, #, %, dots and non-ASCII letters.
func TestThumbnailURLSurvivesBrowsers(t *testing.T) {
	ts := newTestServer(t, nil)
	jpg := reencode(t, photo(t, ukName(5)), 0.25, 70)
	for _, id := range []string{"a/b", "../x", "a/../../b", "./x", "x/.", "x/..", "...", "q?x=1", "h#frag", "p%2e%2e", "%", "%2F",
		"名前/ürün", "trailing/", "a b+c"} {
		body, ct := multipartBody(t, part{"image", "x.jpg", jpg}, part{"id", "", []byte(id)})
		r := do(t, "POST", ts.url+"/v1/collections/default/items", ct, body)
		var added addResult
		r.json(t, &added)
		if r.status != 201 || added.Item == nil {
			t.Fatalf("add %q: %d %s", id, r.status, r.body)
		}
		u := added.Item.ThumbnailURL
		if p := browserPath(u); p != u {
			t.Errorf("id %q: thumbnail_url %q becomes %q in a browser", id, u, p)
			continue
		}
		if r := do(t, "GET", ts.url+browserPath(u), "", nil); r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "image/") {
			t.Errorf("id %q: GET %s: %d %.100s", id, u, r.status, r.body)
		}
	}
}

// TestWrongMethodIs405: a wrong method on a path that exists answers 405 with Allow and the JSON
// error shape; a path that does not exist stays 404.
func TestWrongMethodIs405(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, tc := range []struct {
		method, path string
		allow        []string // nil: 404
	}{
		{"PUT", "/v1/collections/default", []string{"GET", "DELETE"}},
		{"POST", "/v1/collections/default", []string{"GET", "DELETE"}},
		{"PATCH", "/v1/collections", []string{"GET", "POST"}},
		{"POST", "/v1/collections/default/items/x", []string{"GET", "DELETE", "PATCH"}},
		{"DELETE", "/v1/collections/default/items/x/thumbnail", []string{"GET"}},
		{"GET", "/v1/collections/default/search", []string{"POST"}},
		{"GET", "/v1/collections/default/items:batch", []string{"POST"}},
		{"POST", "/v1/admin/backup", []string{"GET"}},
		{"POST", "/healthz", []string{"GET"}},
		{"DELETE", "/openapi.json", []string{"GET"}},
		{"PUT", "/v1/nothing-here", nil},
		{"GET", "/v1/nothing-here", nil},
		{"DELETE", "/v1/collections/default/items/x/nothing", nil},
	} {
		r := do(t, tc.method, ts.url+tc.path, "", nil)
		if tc.allow == nil {
			if r.status != 404 || r.errorCode(t) != "not_found" {
				t.Errorf("%s %s: %d %s, want 404", tc.method, tc.path, r.status, r.body)
			}
			continue
		}
		if r.status != http.StatusMethodNotAllowed || r.errorCode(t) != "method_not_allowed" {
			t.Errorf("%s %s: %d %s, want 405 method_not_allowed", tc.method, tc.path, r.status, r.body)
			continue
		}
		var got []string
		for _, m := range strings.Split(r.header.Get("Allow"), ",") {
			if m = strings.TrimSpace(m); m != "HEAD" {
				got = append(got, m)
			}
		}
		slices.Sort(got)
		want := slices.Clone(tc.allow)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s %s: Allow %q, want %v", tc.method, tc.path, r.header.Get("Allow"), tc.allow)
		}
	}
}
