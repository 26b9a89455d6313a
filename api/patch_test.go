package api

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/index"
)

// axisVector is a dims-long vector whose first components are w (the rest 0).
func axisVector(dims int, w ...float32) []float32 {
	v := make([]float32, dims)
	copy(v, w)
	return v
}

// putCatalog stores n synthetic items it00..: colour red for even i, blue for odd, price i, an EAN
// that a float64 cannot hold, and a vector along axis i%16.
func (ts *testServer) putCatalog(t *testing.T, n int) {
	t.Helper()
	dims := ts.eng.Info().Dims
	items := make([]index.Item, n)
	for i := range items {
		v := axisVector(dims, 0.1)
		v[1+i%16] = 1
		items[i] = index.Item{ID: fmt.Sprintf("it%02d", i), Vector: v, ContentHash: fmt.Sprintf("h%d", i),
			Metadata: []byte(fmt.Sprintf(`{"ean":9007199254740993,"colour":%q,"price":%d,"note":"a<b"}`, []string{"red", "blue"}[i%2], i))}
	}
	ts.putItems(t, "default", items...)
}

type patchAnswer struct {
	Outcome string   `json:"outcome"`
	Item    itemJSON `json:"item"`
}

func TestPatchItem(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.putCatalog(t, 2)
	u := ts.url + "/v1/collections/default/items/it00"
	g := do(t, "GET", u+"?with_vector=true", "", nil)
	var before itemJSON
	g.json(t, &before)
	if g.header.Get("ETag") != etag(before.Version) || len(before.Vector) != ts.eng.Info().Dims {
		t.Fatalf("GET: ETag %q, version %d, %d-dim vector", g.header.Get("ETag"), before.Version, len(before.Vector))
	}
	v := strconv.FormatUint(before.Version, 10)
	stale := strconv.FormatUint(before.Version+1000, 10)
	const mp = "application/merge-patch+json"
	for _, tc := range []struct {
		name, ct, body string
		headers        []string
		status         int
		code           string
		meta           string // the metadata after, when the patch succeeds
		outcome        string
	}{
		{"stale If-Match", mp, `{"metadata":{"price":1}}`, []string{"If-Match", `"` + stale + `"`}, 409, "version_conflict", "", ""},
		{"stale if_version", mp, `{"metadata":{"price":1},"if_version":` + stale + `}`, nil, 409, "version_conflict", "", ""},
		{"If-Match and if_version disagree", mp, `{"metadata":{},"if_version":` + v + `}`, []string{"If-Match", `"` + stale + `"`}, 400, "bad_request", "", ""},
		{"read-only member", mp, `{"id":"other"}`, nil, 400, "read_only_field", "", ""},
		{"unknown member", mp, `{"metdata":{}}`, nil, 400, "invalid_patch", "", ""},
		{"metadata not an object", mp, `{"metadata":[1]}`, nil, 400, "invalid_patch", "", ""},
		{"not JSON", mp, `{"metadata":`, nil, 400, "invalid_patch", "", ""},
		{"number beyond float64", mp, `{"metadata":{"w":1e400}}`, nil, 400, "invalid_patch", "", ""},
		{"form body", "application/x-www-form-urlencoded", `metadata=x`, nil, 415, "unsupported_content_type", "", ""},
		{"current version", mp, `{"metadata":{"price":12,"note":null,"sale":true},"if_version":` + v + `}`, []string{"If-Match", `"` + v + `"`}, 200, "",
			`{"ean":9007199254740993,"colour":"red","price":12,"sale":true}`, "updated"},
		{"the same again", "application/json", `{"metadata":{"price":12}}`, nil, 200, "", `{"ean":9007199254740993,"colour":"red","price":12,"sale":true}`, "unchanged"},
		{"nested", mp, `{"metadata":{"dims":{"w":3,"h":null}}}`, nil, 200, "",
			`{"ean":9007199254740993,"colour":"red","price":12,"sale":true,"dims":{"w":3}}`, "updated"},
		{"null removes all", mp, `{"metadata":null}`, nil, 200, "", `{}`, "updated"},
	} {
		r := do(t, "PATCH", u, tc.ct, strings.NewReader(tc.body), tc.headers...)
		if r.status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.status)
			continue
		}
		if tc.code != "" {
			if got := r.errorCode(t); got != tc.code {
				t.Errorf("%s: code %s, want %s", tc.name, got, tc.code)
			}
			continue
		}
		var a patchAnswer
		r.json(t, &a)
		if string(a.Item.Metadata) != tc.meta || a.Outcome != tc.outcome || r.header.Get("ETag") != etag(a.Item.Version) {
			t.Errorf("%s: %s (ETag %s), want metadata %s, outcome %s", tc.name, r.body, r.header.Get("ETag"), tc.meta, tc.outcome)
		}
		// What GET reads back is what PATCH answered, and the photo's vector is untouched.
		var now itemJSON
		do(t, "GET", u+"?with_vector=true", "", nil).json(t, &now)
		if now.Version != a.Item.Version || string(now.Metadata) != tc.meta || vectorJSON(now.Vector) != vectorJSON(before.Vector) {
			t.Errorf("%s: GET after PATCH: version %d (patch said %d), metadata %s", tc.name, now.Version, a.Item.Version, now.Metadata)
		}
		if tc.outcome == "unchanged" && a.Item.Version != before.Version && now.Version != a.Item.Version {
			t.Errorf("%s: a patch that changes nothing moved the version", tc.name)
		}
	}
	if r := do(t, "PATCH", ts.url+"/v1/collections/default/items/nope", mp, strings.NewReader(`{"metadata":{}}`)); r.status != 404 || r.errorCode(t) != "item_not_found" {
		t.Errorf("PATCH of a missing item: %d %s", r.status, r.body)
	}
}

// TestScrollCountAndExport: GET items with a filter pages through the matching items only; count
// agrees; with_vector exports the stored vectors.
func TestScrollCountAndExport(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.putCatalog(t, 25)
	base := ts.url + "/v1/collections/default/items"
	type page struct {
		Items      []itemJSON `json:"items"`
		NextCursor string     `json:"next_cursor"`
	}
	for _, tc := range []struct {
		filter string
		want   int
	}{{"", 25}, {`colour = "red"`, 13}, {`{"price":{"gte":20}}`, 5}, {`colour = "red" AND price < 4`, 2}} {
		q := "filter=" + url.QueryEscape(tc.filter)
		var c struct{ Count int }
		if r := do(t, "GET", base+":count?"+q, "", nil); r.status != 200 {
			t.Fatalf("count %q: %d %s", tc.filter, r.status, r.body)
		} else if r.json(t, &c); c.Count != tc.want {
			t.Errorf("count %q = %d, want %d", tc.filter, c.Count, tc.want)
		}
		got, cursor := 0, ""
		for pages := 0; ; pages++ {
			var p page
			r := do(t, "GET", base+"?limit=4&with_vector=true&"+q+"&cursor="+cursor, "", nil)
			if r.status != 200 || pages > 20 {
				t.Fatalf("scroll %q: %d %s", tc.filter, r.status, r.body)
			}
			r.json(t, &p)
			for _, it := range p.Items {
				var norm float64
				for _, x := range it.Vector {
					norm += float64(x) * float64(x)
				}
				if math.Abs(norm-1) > 1e-4 || !strings.Contains(string(it.Metadata), "9007199254740993") {
					t.Fatalf("exported item %s: |v|² = %v, metadata %s", it.ID, norm, it.Metadata)
				}
			}
			got += len(p.Items)
			if cursor = p.NextCursor; cursor == "" {
				break
			}
		}
		if got != tc.want {
			t.Errorf("scroll %q listed %d items, want %d", tc.filter, got, tc.want)
		}
	}
	var p page
	do(t, "GET", base+"?limit=1", "", nil).json(t, &p)
	if len(p.Items) != 1 || p.Items[0].Vector != nil {
		t.Errorf("vectors sent without with_vector: %+v", p.Items)
	}
	for _, bad := range []struct{ q, code string }{
		{"filter=" + url.QueryEscape(`colr = "red"`), "unknown_field"},
		{"filter=" + url.QueryEscape(`colour = `), "invalid_filter"},
		{"with_vector=maybe", "invalid_query"},
	} {
		if r := do(t, "GET", base+"?"+bad.q, "", nil); r.status != 400 || r.errorCode(t) != bad.code {
			t.Errorf("%s: %d %s, want 400 %s", bad.q, r.status, r.body, bad.code)
		}
		if r := do(t, "GET", base+":count?"+bad.q, "", nil); bad.code != "invalid_query" && (r.status != 400 || r.errorCode(t) != bad.code) {
			t.Errorf("count %s: %d %s, want 400 %s", bad.q, r.status, r.body, bad.code)
		}
	}
}

// TestBulkUpdateAndDeleteByFilter: items:update patches the matching items page by page (a dry
// run first), items:delete moves them to the trash, and trash:restore brings one back.
func TestBulkUpdateAndDeleteByFilter(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.putCatalog(t, 12)
	base := ts.url + "/v1/collections/default/items"
	post := func(route, body string) response {
		return do(t, "POST", base+route, "application/json", strings.NewReader(body))
	}
	type report struct {
		Matched, Updated, Unchanged, Trashed, Skipped int
		IDs                                           []string `json:"ids"`
		NextCursor                                    string   `json:"next_cursor"`
		DryRun                                        bool     `json:"dry_run"`
	}
	var rep report
	r := post(":update", `{"filter":"colour = \"red\"","metadata":{"sale":true},"limit":2,"dry_run":true}`)
	if r.json(t, &rep); r.status != 200 || !rep.DryRun || rep.Updated != 2 || rep.NextCursor == "" {
		t.Fatalf("dry run: %d %s", r.status, r.body)
	}
	var updated []string
	for cursor, pages := "", 0; ; pages++ {
		r := post(":update", fmt.Sprintf(`{"filter":{"colour":"red"},"metadata":{"sale":true,"note":null},"limit":2,"cursor":%q}`, cursor))
		rep = report{}
		if r.json(t, &rep); r.status != 200 || pages > 10 {
			t.Fatalf("update page %d: %d %s", pages, r.status, r.body)
		}
		updated = append(updated, rep.IDs...)
		if cursor = rep.NextCursor; cursor == "" {
			break
		}
	}
	var c struct{ Count int }
	do(t, "GET", base+":count?filter="+url.QueryEscape("sale = true"), "", nil).json(t, &c)
	if len(updated) != 6 || c.Count != 6 {
		t.Fatalf("updated %v, %d items on sale; want the 6 red ones", updated, c.Count)
	}
	var it itemJSON
	do(t, "GET", base+"/it02", "", nil).json(t, &it)
	if string(it.Metadata) != `{"ean":9007199254740993,"colour":"red","price":2,"sale":true}` {
		t.Fatalf("it02 after the bulk patch: %s", it.Metadata)
	}
	for _, bad := range []struct{ route, body, code string }{
		{":update", `{"metadata":{"a":1}}`, "filter_required"},
		{":delete", `{}`, "filter_required"},
		{":update", `{"all":true,"filter":"price > 1","metadata":{"a":1}}`, "bad_request"},
		{":update", `{"all":true,"metadata":[1]}`, "invalid_patch"},
		{":update", `{"all":true}`, "bad_request"},
		{":delete", `{"filter":"colr = \"red\""}`, "unknown_field"},
		{":delete", `{"all":true,"limit":1001}`, "invalid_query"},
	} {
		if r := post(bad.route, bad.body); r.status != 400 || r.errorCode(t) != bad.code {
			t.Errorf("%s %s: %d %s, want 400 %s", bad.route, bad.body, r.status, r.body, bad.code)
		}
	}
	r = post(":delete", `{"filter":"sale = true"}`)
	rep = report{}
	if r.json(t, &rep); r.status != 200 || rep.Trashed != 6 || !strings.Contains(string(r.body), "restorable_until") {
		t.Fatalf("delete by filter: %d %s", r.status, r.body)
	}
	do(t, "GET", base+":count", "", nil).json(t, &c)
	if c.Count != 6 {
		t.Fatalf("%d items left, want 6", c.Count)
	}
	if r := do(t, "POST", ts.url+"/v1/collections/default/trash:restore", "application/json", strings.NewReader(`{"ids":["it02"]}`)); r.status != 200 {
		t.Fatalf("restore: %d %s", r.status, r.body)
	}
	if g := do(t, "GET", base+"/it02", "", nil); g.status != http.StatusOK {
		t.Fatalf("a restored item: %d", g.status)
	}
}
