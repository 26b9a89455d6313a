package api

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/lookalike/lookalike/index"
)

// The OpenAPI document and the router must describe the same API: every documented operation is
// routed, and every routed API operation is documented.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	ts := newTestServer(t, nil)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	r := do(t, "GET", ts.url+"/openapi.json", "", nil)
	r.json(t, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	param := regexp.MustCompile(`:([a-z]+)`)
	routed := map[string]bool{}
	for _, rt := range ts.App().GetRoutes(true) {
		if rt.Method == fiber.MethodHead || rt.Method == "USE" || strings.Contains(rt.Path, "*") {
			continue
		}
		p := strings.ReplaceAll(rt.Path, `\:`, "\x00")
		p = param.ReplaceAllString(p, "{$1}")
		p = strings.ReplaceAll(p, "\x00", ":")
		if p == "/" || p == "" {
			continue
		}
		routed[rt.Method+" "+p] = true
	}
	var missing, undocumented []string
	for op := range documented {
		if !routed[op] {
			missing = append(missing, op)
		}
	}
	for op := range routed {
		if !documented[op] {
			undocumented = append(undocumented, op)
		}
	}
	sort.Strings(missing)
	sort.Strings(undocumented)
	if len(missing) > 0 || len(undocumented) > 0 {
		t.Fatalf("documented but not routed: %v\nrouted but not documented: %v", missing, undocumented)
	}
	if len(routed) < 15 {
		t.Fatalf("only %d routes found: the comparison is not looking at the real router", len(routed))
	}
}

func TestMetricsExposition(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts)
	ts.searchImage(t, photo(t, ukName(3)))
	ts.searchImage(t, []byte("not an image"))
	do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00001/similar", "", nil)
	r := do(t, "GET", ts.url+"/metrics", "", nil)
	if r.status != 200 {
		t.Fatalf("/metrics: %d", r.status)
	}
	text := string(r.body)
	for _, want := range []string{
		`lookalike_stage_duration_seconds_bucket{stage="inference",le="0.004"}`,
		`lookalike_stage_duration_seconds_bucket{stage="decode",le="0.001"}`,
		`lookalike_stage_duration_seconds_count{stage="search"}`,
		`lookalike_stage_duration_seconds_count{stage="total"}`,
		`lookalike_http_requests_total{method="POST",route="/v1/collections/:c/search",status="200"}`,
		`lookalike_http_requests_total{method="POST",route="/v1/collections/:c/search",status="415"}`,
		`lookalike_http_request_duration_seconds_bucket{method="GET",route="/v1/collections/:c/items/:id/similar",status="2xx",le="0.002"}`,
		`lookalike_http_requests_in_flight`,
		`lookalike_embed_queue_depth`,
		`lookalike_embed_admission_total{outcome="admitted"}`,
		`lookalike_embed_batch_size_bucket`,
		`lookalike_rejected_requests_total{reason="not_an_image"} 1`,
		`lookalike_index_items{collection="default"} 8`,
		`lookalike_index_graph_levels{collection="default"}`,
		`lookalike_model_info{device="cpu",dims="1280",fingerprint="` + ts.eng.Info().Fingerprint + `",model="` + ts.eng.Info().ModelID + `"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// No item id or raw path may become a label value.
	if strings.Contains(text, "ukbench0000") {
		t.Error("/metrics leaks item ids into labels")
	}
}

func TestStatsEndpoint(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts)
	for i := 0; i < 3; i++ {
		ts.searchImage(t, photo(t, ukName(i)))
	}
	ts.searchImage(t, []byte("junk"))
	var st struct {
		Model       map[string]any   `json:"model"`
		Collections []map[string]any `json:"collections"`
		Series      []statsPoint     `json:"series"`
		Totals      statsTotals      `json:"totals"`
	}
	do(t, "GET", ts.url+"/v1/stats", "", nil).json(t, &st)
	if st.Totals.Searches != 3 || st.Totals.RejectedByReason["not_an_image"] != 1 || st.Totals.P95 <= 0 {
		t.Fatalf("totals %+v", st.Totals)
	}
	if len(st.Series) < 6 || st.Series[len(st.Series)-1].QPS <= 0 {
		t.Fatalf("series does not end with the current bucket: %+v", st.Series[len(st.Series)-1])
	}
	if st.Model["id"] == "" || len(st.Collections) != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

// FuzzParseSearch feeds arbitrary bodies and content types to the search parser: it must return a
// request or an *Error, never panic.
func FuzzParseSearch(f *testing.F) {
	f.Add("application/json", []byte(`{"id":"a","k":3,"filter":{"price":{"lt":3}},"crop":"1,2,3,4"}`))
	f.Add("application/json", []byte(`{"vector":[0.1,0.2],"cursor":"bzEuMw","exclude_ids":["a"]}`))
	f.Add("application/json", []byte(`{"image":"data:image/png;base64,iVBORw0KGgo=","crop":{"x":1,"y":2,"w":3,"h":4}}`))
	f.Add("multipart/form-data; boundary=XX", []byte("--XX\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n5\r\n--XX\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n\xff\xd8\xff\r\n--XX--\r\n"))
	f.Add("multipart/form-data; boundary=XX", []byte("--XX\r\nContent-Disposition: form-data; name=\"filter\"\r\n\r\nprice < 3 AND (brand IN (\"a\"))\r\n--XX--"))
	f.Add("image/jpeg", []byte{0xff, 0xd8, 0xff, 0xe0})
	f.Add("text/plain", []byte("hello"))
	// Query limits: k = 0 and k = max_k, ef at and past index.MaxEf, cursors at and past the result
	// window, min_score out of range, NaN and ±Inf (form values parse them; JSON cannot carry them).
	f.Add("application/json", []byte(`{"id":"a","k":0}`))
	f.Add("application/json", []byte(`{"id":"a","k":1000,"ef":4096}`))
	f.Add("application/json", []byte(`{"id":"a","k":100,"ef":4097,"cursor":"`+encodeCursor(950)+`"}`))
	f.Add("application/json", []byte(`{"id":"a","cursor":"`+encodeCursor(1000)+`"}`))
	f.Add("application/json", []byte(`{"id":"a","min_score":-1.5}`))
	f.Add("application/json", []byte(`{"id":"a","min_score":1e39}`))
	for _, v := range []string{"NaN", "-Inf", "+Inf", "Infinity", "0", "1001", "-1"} {
		f.Add("multipart/form-data; boundary=XX", []byte("--XX\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\na\r\n--XX\r\nContent-Disposition: form-data; name=\"min_score\"\r\n\r\n"+v+"\r\n--XX\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n"+v+"\r\n--XX\r\nContent-Disposition: form-data; name=\"ef\"\r\n\r\n"+v+"\r\n--XX--\r\n"))
	}
	app := fiber.New()
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		c := app.AcquireCtx(&fasthttp.RequestCtx{})
		defer app.ReleaseCtx(c)
		c.Request().Header.SetContentType(contentType)
		c.Request().SetBody(body)
		req, err := parseSearch(c, 1000, 10)
		if err != nil {
			if _, ok := err.(*Error); !ok && classify(err).Code == "internal" {
				t.Fatalf("unclassified parser error %T: %v", err, err)
			}
			return
		}
		if req.K < 1 || req.K > 1000 || req.offset < 0 || req.offset+req.K > index.MaxK || req.Ef < 0 || req.Ef > index.MaxEf {
			t.Fatalf("accepted out-of-range request %+v", req)
		}
		if m := req.MinScore; m != nil && !(*m >= -1 && *m <= 1) {
			t.Fatalf("accepted min_score %v", *m)
		}
		if req.Image == nil && req.ID == "" && req.Vector == nil {
			t.Fatalf("accepted a request without a query: %q", bytes.TrimSpace(body))
		}
	})
}
