package api

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/internal/config"
)

// TestSearchRerankParameter: rerank is read from JSON, forms and query strings, defaults per
// endpoint from the configuration, is reported in the response, and anything else is 400
// invalid_query naming it.
func TestSearchRerankParameter(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts)
	img := photo(t, ukName(1))
	b64 := base64.StdEncoding.EncodeToString(img)
	searchURL := ts.url + "/v1/collections/default/search"
	similarURL := ts.url + "/v1/collections/default/items/ukbench00002/similar"
	for _, tc := range []struct {
		name string
		send func() response
		want string // the response's rerank; "" = 400 invalid_query
	}{
		{"json default", func() response {
			return do(t, "POST", searchURL, "application/json", strings.NewReader(fmt.Sprintf(`{"image":%q,"k":3}`, b64)))
		}, "none"}, // index.rerank_search defaults to none
		{"json kr", func() response {
			return do(t, "POST", searchURL, "application/json", strings.NewReader(fmt.Sprintf(`{"image":%q,"k":3,"rerank":"kr"}`, b64)))
		}, "kr"},
		{"form qe", func() response {
			r, _ := ts.searchImage(t, img, part{"rerank", "", []byte("qe")})
			return r
		}, "qe"},
		{"raw body, escaped plus", func() response {
			return do(t, "POST", searchURL+"?k=2&rerank=qe%2Bkr", "image/jpeg", bytes.NewReader(img))
		}, "qe+kr"},
		{"raw body, plus read as a space", func() response {
			return do(t, "POST", searchURL+"?k=2&rerank=qe+kr", "image/jpeg", bytes.NewReader(img))
		}, "qe+kr"},
		{"by id none", func() response {
			return do(t, "POST", searchURL, "application/json", strings.NewReader(`{"id":"ukbench00004","k":3,"rerank":"none"}`))
		}, "none"},
		{"similar default", func() response { return do(t, "GET", similarURL+"?k=3", "", nil) }, "none"},
		{"similar kr", func() response { return do(t, "GET", similarURL+"?k=3&rerank=KR", "", nil) }, "kr"},
		{"json unknown", func() response {
			return do(t, "POST", searchURL, "application/json", strings.NewReader(fmt.Sprintf(`{"image":%q,"rerank":"k-reciprocal"}`, b64)))
		}, ""},
		{"json wrong type", func() response {
			return do(t, "POST", searchURL, "application/json", strings.NewReader(`{"id":"ukbench00004","rerank":1}`))
		}, "bad_request"},
		{"similar unknown", func() response { return do(t, "GET", similarURL+"?rerank=default", "", nil) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.send()
			switch tc.want {
			case "":
				wantInvalidQuery(t, r, "rerank")
				return
			case "bad_request":
				if r.status != http.StatusBadRequest {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
				return
			}
			var sr searchResponse
			r.json(t, &sr)
			if r.status != http.StatusOK || sr.Rerank != tc.want || len(sr.Results) == 0 {
				t.Fatalf("status %d, rerank %q (want %q): %.300s", r.status, sr.Rerank, tc.want, r.body)
			}
		})
	}
	// A search by id is the similar search of that item under the search's options.
	for _, mode := range []string{"none", "qe", "kr", "qe+kr"} {
		r := do(t, "POST", searchURL, "application/json", strings.NewReader(`{"id":"ukbench00002","k":5,"rerank":"`+mode+`"}`))
		var byID, bySimilar searchResponse
		r.json(t, &byID)
		r = do(t, "GET", similarURL+"?k=5&diversify=false&rerank="+strings.ReplaceAll(mode, "+", "%2B"), "", nil)
		r.json(t, &bySimilar)
		if got, want := strings.Join(ids(byID.Results), ","), strings.Join(ids(bySimilar.Results), ","); got != want || strings.Contains(got, "ukbench00002") {
			t.Errorf("%s: search by id %s, similar %s", mode, got, want)
		}
	}
}

// TestRerankDefaultsFromConfig: index.rerank_search and index.rerank_similar set the defaults.
func TestRerankDefaultsFromConfig(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) { c.Index.RerankSearch, c.Index.RerankSimilar = "none", "qe" })
	seed(t, ts)
	_, sr := ts.searchImage(t, photo(t, ukName(1)))
	if sr.Rerank != "none" {
		t.Errorf("search default %q, want none", sr.Rerank)
	}
	var sim searchResponse
	do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00002/similar", "", nil).json(t, &sim)
	if sim.Rerank != "qe" {
		t.Errorf("similar default %q, want qe", sim.Rerank)
	}
}

// TestSearchRerankOwnPhotoFirst: a catalog photo sent as the query comes back first under every
// re-ranking, among its three look-alikes (UKBench groups of four). Query expansion used to let
// k-reciprocal re-ranking rank the look-alikes above it (docs/quality.md, Re-ranking).
func TestSearchRerankOwnPhotoFirst(t *testing.T) {
	ts := newTestServer(t, nil)
	const n = 48
	for i := range n {
		ts.addPhoto(t, ukName(i), "{}")
	}
	for _, mode := range []string{"qe", "kr", "qe+kr"} {
		for i := range n {
			r, sr := ts.searchImage(t, photo(t, ukName(i)), part{"k", "", []byte("3")}, part{"rerank", "", []byte(mode)})
			want := strings.TrimSuffix(ukName(i), ".jpg")
			if r.status != http.StatusOK || len(sr.Results) == 0 || sr.Results[0].ID != want {
				t.Errorf("%s: %s searched with its own photo: %d %v", mode, want, r.status, ids(sr.Results))
			}
		}
	}
}
