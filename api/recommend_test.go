package api

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// putPlane stores items on the plane of the first two axes, at the given angles (degrees), named
// by their angle: a0, a30, ... so that rankings by cosine are known exactly.
func (ts *testServer) putPlane(t *testing.T, degrees ...int) {
	t.Helper()
	dims := ts.eng.Info().Dims
	var items []index.Item
	for _, d := range degrees {
		v := axisVector(dims, cosDeg(d), sinDeg(d))
		items = append(items, index.Item{ID: fmt.Sprintf("a%d", d), Vector: v, Metadata: []byte(fmt.Sprintf(`{"deg":%d,"half":%q}`, d, map[bool]string{true: "low", false: "high"}[d < 180]))})
	}
	ts.putItems(t, "default", items...)
}

func (ts *testServer) postJSON(t *testing.T, route, body string) response {
	t.Helper()
	return do(t, "POST", ts.url+"/v1/collections/default/"+route, "application/json", strings.NewReader(body))
}

func TestRecommend(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.putPlane(t, 0, 30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 330)
	dims := ts.eng.Info().Dims
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
		want       []string // the first results, in order
	}{
		{"one positive: its neighbours, itself excluded", `{"positive":["a60"],"k":2}`, 200, "", []string{"a30", "a90"}},
		// 2p − n with p at 60° and n at 90° points at about 30°.
		{"away from a negative", `{"positive":["a60"],"negative":["a90"],"k":2}`, 200, "", []string{"a30", "a0"}},
		// Weights pull the mean of 0° (3) and 90° (1) to about 18°, nearer 30° than anything else.
		{"weights", `{"positive":[{"id":"a0","weight":3},{"id":"a90"}],"k":1}`, 200, "", []string{"a30"}},
		{"a raw vector", fmt.Sprintf(`{"positive":[%s],"k":1}`, vectorJSON(axisVector(dims, cosDeg(200), sinDeg(200)))), 200, "", []string{"a210"}},
		{"with a filter", `{"positive":["a0"],"filter":"half = \"high\"","k":2}`, 200, "", []string{"a330", "a300"}},
		{"no positive", `{"negative":["a0"]}`, 400, "invalid_examples", nil},
		{"unknown example", `{"positive":["nope"]}`, 404, "item_not_found", nil},
		{"bad weight", `{"positive":[{"id":"a0","weight":-2}]}`, 400, "invalid_examples", nil},
		{"short vector", `{"positive":[[1,0]]}`, 400, "invalid_examples", nil},
		{"unknown member of an example", `{"positive":[{"idd":"a0"}]}`, 400, "bad_request", nil},
		{"bad k", `{"positive":["a0"],"k":0}`, 400, "invalid_query", nil},
		{"unknown field in the filter", `{"positive":["a0"],"filter":"colour = \"red\""}`, 400, "unknown_field", nil},
	} {
		r := ts.postJSON(t, "recommend", tc.body)
		if r.status != tc.status {
			t.Errorf("%s: %d %.300s, want %d", tc.name, r.status, r.body, tc.status)
			continue
		}
		if tc.code != "" {
			if got := r.errorCode(t); got != tc.code {
				t.Errorf("%s: code %s, want %s", tc.name, got, tc.code)
			}
			continue
		}
		var sr searchResponse
		r.json(t, &sr)
		// Compared as sets: items at the same cosine may come in either order.
		got := ids(sr.Results)
		got = got[:min(len(got), len(tc.want))]
		slices.Sort(got)
		if !slices.Equal(got, slices.Sorted(slices.Values(tc.want))) {
			t.Errorf("%s: results %v, want %v first", tc.name, got, tc.want)
		}
	}
}

// Recommendations that fetch many candidates are expensive queries: they pass admission control.
func TestRecommendAdmission(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) { c.Server.MaxInflightEmbeds, c.Server.MaxQueuedEmbeds = 1, 0 })
	ts.putPlane(t, 0, 30, 60)
	release, err := ts.admit.acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if r := ts.postJSON(t, "recommend", `{"positive":["a0"],"k":500}`); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("a large recommendation with every slot taken: %d %s", r.status, r.body)
	}
	if r := ts.postJSON(t, "recommend", `{"positive":["a0"],"k":2}`); r.status != http.StatusOK {
		t.Fatalf("a small recommendation needs no slot: %d %s", r.status, r.body)
	}
}

type batchQueries struct {
	Results []struct {
		Status  int          `json:"status"`
		Results []resultJSON `json:"results"`
		Error   *Error       `json:"error"`
	} `json:"results"`
}

func (b batchQueries) statuses() []int {
	var out []int
	for _, r := range b.Results {
		out = append(out, r.Status)
	}
	return out
}

func TestQueryBatches(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.putPlane(t, 0, 30, 60, 90, 120)
	ts.addPhoto(t, ukName(0), `{"deg":-1}`)
	dims := ts.eng.Info().Dims
	img := b64(photo(t, ukName(1)))
	for _, tc := range []struct {
		name, route, body string
		status            int
		statuses          []int
		first             []string // each answer's first result ("" for a failed query)
	}{
		{"search:batch", "search:batch", fmt.Sprintf(`{"searches":[{"vector":%s,"k":2},{"id":"a0","k":1},{"image":%q,"k":1},{"id":"a0","k":0},{"id":"nope"}]}`,
			vectorJSON(axisVector(dims, 1)), img), 200, []int{200, 200, 200, 400, 404}, []string{"a0", "a30", "ukbench00000", "", ""}},
		{"similar:batch", "similar:batch", `{"ids":["a0","nope","a120"],"k":1,"diversify":false}`, 200, []int{200, 404, 200}, []string{"a30", "", "a90"}},
		{"recommend:batch", "recommend:batch", `{"recommendations":[{"positive":["a0","a60"],"k":1},{"positive":[]},{"positive":["a120"],"negative":["a0"],"k":1}]}`,
			200, []int{200, 400, 200}, []string{"a30", "", "a90"}},
		{"empty", "similar:batch", `{"ids":[]}`, 400, nil, nil},
		{"too many", "similar:batch", `{"ids":[` + strings.Repeat(`"a0",`, maxBatchQueries) + `"a0"]}`, 413, nil, nil},
		{"a bad shared k", "similar:batch", `{"ids":["a0"],"k":5000}`, 400, nil, nil},
		{"unknown member", "search:batch", `{"queries":[]}`, 400, nil, nil},
	} {
		r := ts.postJSON(t, tc.route, tc.body)
		if r.status != tc.status {
			t.Errorf("%s: %d %.300s, want %d", tc.name, r.status, r.body, tc.status)
			continue
		}
		if tc.status != 200 {
			continue
		}
		var b batchQueries
		r.json(t, &b)
		if !slices.Equal(b.statuses(), tc.statuses) {
			t.Errorf("%s: statuses %v, want %v (%.400s)", tc.name, b.statuses(), tc.statuses, r.body)
			continue
		}
		for i, a := range b.Results {
			first := ""
			if len(a.Results) > 0 {
				first = a.Results[0].ID
			}
			if first != tc.first[i] || (a.Status != 200) != (a.Error != nil) {
				t.Errorf("%s: answer %d: first %q, want %q (%+v)", tc.name, i, first, tc.first[i], a)
			}
		}
	}
}

func cosDeg(d int) float32 { return float32(math.Cos(float64(d) * math.Pi / 180)) }
func sinDeg(d int) float32 { return float32(math.Sin(float64(d) * math.Pi / 180)) }
