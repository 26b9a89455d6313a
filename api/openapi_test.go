package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	legacyrouter "github.com/getkin/kin-openapi/routers/legacy"
)

// loadOpenAPI parses the served document and validates it as OpenAPI 3 (kin-openapi: structure,
// schemas, $refs, path parameters).
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPIDocument)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not valid OpenAPI 3: %v", err)
	}
	return doc
}

// TestOpenAPIDocumentValidates: the document is valid OpenAPI 3, and complete enough for client
// generators: every operation has a unique operationId, and every success that carries a body
// says what it is.
func TestOpenAPIDocumentValidates(t *testing.T) {
	doc := loadOpenAPI(t)
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			switch prev, dup := ids[op.OperationID]; {
			case op.OperationID == "":
				t.Errorf("%s has no operationId", name)
			case dup:
				t.Errorf("%s and %s share operationId %q", name, prev, op.OperationID)
			}
			ids[op.OperationID] = name
			for code, r := range op.Responses.Map() {
				if strings.HasPrefix(code, "2") && code != "204" && len(r.Value.Content) == 0 {
					t.Errorf("%s: response %s describes no content", name, code)
				}
				for ct, mt := range r.Value.Content {
					if mt.Schema == nil {
						t.Errorf("%s: response %s %s has no schema", name, code, ct)
					}
				}
			}
		}
	}
}

// TestResponsesMatchOpenAPI sends real requests to a real server, checks each request against
// the document (so the examples a client would send are what it describes) and each response
// against the schema it promises, errors included.
func TestResponsesMatchOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	router, err := legacyrouter.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, nil)
	ts.putCatalog(t, 6)
	ts.putPlane(t, 0, 30, 60)
	ts.addPhoto(t, ukName(0), `{"colour":"red"}`)
	js := "application/json"
	// bad: a request the document itself refuses (the server answers it with its 400).
	for _, rq := range []struct {
		method, path, ct, body string
		bad                    bool
	}{
		{"GET", "/v1/collections", "", "", false},
		{"GET", "/v1/collections/default", "", "", false},
		{"GET", "/v1/collections/default/items?limit=2&with_vector=true&filter=colour%20%3D%20%22red%22", "", "", false},
		{"GET", "/v1/collections/default/items:count?filter=price%20%3E%202", "", "", false},
		{"GET", "/v1/collections/default/items/it01?with_vector=true", "", "", false},
		{"GET", "/v1/collections/default/items/nope", "", "", false},
		{"PATCH", "/v1/collections/default/items/it01", "application/merge-patch+json", `{"metadata":{"price":7,"note":null}}`, false},
		{"PATCH", "/v1/collections/default/items/it01", js, `{"metadata":{"price":8},"if_version":1}`, false},
		{"POST", "/v1/collections/default/items:update", js, `{"filter":"colour = \"blue\"","metadata":{"sale":true},"limit":2}`, false},
		{"POST", "/v1/collections/default/items:delete", js, `{"filter":{"price":{"gte":5}},"dry_run":true}`, false},
		{"POST", "/v1/collections/default/search", js, `{"id":"a0","k":2}`, false},
		{"GET", "/v1/collections/default/items/a0/similar?k=2", "", "", false},
		{"POST", "/v1/collections/default/recommend", js, `{"positive":["a0",{"id":"a30","weight":2}],"negative":["it01"],"k":2}`, false},
		{"POST", "/v1/collections/default/recommend", js, `{"positive":[]}`, true},
		{"POST", "/v1/collections/default/recommend:batch", js, `{"recommendations":[{"positive":["a0"],"k":1},{"positive":["nope"]}]}`, false},
		{"POST", "/v1/collections/default/search:batch", js, `{"searches":[{"id":"a30","k":1},{"id":"a0","k":0}]}`, true},
		{"POST", "/v1/collections/default/similar:batch", js, `{"ids":["a0","nope"],"k":1}`, false},
		{"GET", "/v1/collections/default/fields", "", "", false},
		{"GET", "/v1/stats", "", "", false},
	} {
		req, err := http.NewRequest(rq.method, ts.url+rq.path, strings.NewReader(rq.body))
		if err != nil {
			t.Fatal(err)
		}
		if rq.ct != "" {
			req.Header.Set("Content-Type", rq.ct)
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s: not in the document: %v", rq.method, rq.path, err)
			continue
		}
		opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
		if err := openapi3filter.ValidateRequest(context.Background(), in); (err != nil) != rq.bad {
			t.Errorf("%s %s: the document accepts the request: %v, want %v (%v)", rq.method, rq.path, err == nil, !rq.bad, err)
		}
		req.Body = io.NopCloser(strings.NewReader(rq.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
			Body: io.NopCloser(bytes.NewReader(body)), Options: opts}
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("%s %s: %d response does not match the document: %v\n%.400s", rq.method, rq.path, resp.StatusCode, err, body)
		}
	}
}
