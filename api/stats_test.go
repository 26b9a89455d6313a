package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestStatsRejectedInputs: /v1/stats counts requests refused for what they sent (not an image, a
// bad parameter), not lookups of missing items or routes.
func TestStatsRejectedInputs(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/collections/default/items/nope", ""},
		{"GET", "/v1/collections/nope/items/x/thumbnail", ""},
		{"GET", "/v1/no-such-route", ""},
		{"PUT", "/v1/stats", ""},
		{"POST", "/v1/collections/default/search", `{"image":"bm90IGFuIGltYWdl"}`},
		{"POST", "/v1/collections/default/search", `{"id":"a","k":0}`},
	} {
		do(t, r.method, ts.url+r.path, "application/json", strings.NewReader(r.body))
	}
	res := do(t, "GET", ts.url+"/v1/stats", "", nil)
	var st struct {
		Totals struct {
			RejectedByReason map[string]int `json:"rejected_by_reason"`
		} `json:"totals"`
	}
	if res.status != http.StatusOK || json.Unmarshal(res.body, &st) != nil {
		t.Fatalf("stats: %d %s", res.status, res.body)
	}
	got := st.Totals.RejectedByReason
	total := 0
	for _, n := range got {
		total += n
	}
	if total != 2 || got["invalid_query"] != 1 {
		t.Errorf("rejected_by_reason %v: want the two refused inputs (an invalid image and invalid_query), no 404 or 405", got)
	}
}
