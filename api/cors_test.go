package api

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/internal/config"
)

// TestCORS: with server.cors_origins a storefront's page may call the API (preflight, then the
// request, readable by the page); other origins are refused; credentials are never allowed; and
// without the setting OPTIONS still says what a path takes while no page of another origin is let in.
func TestCORS(t *testing.T) {
	const shop = "https://shop.example"
	search := "/v1/collections/default/search"
	preflight := func(origin, method string) []string {
		return []string{"Origin", origin, "Access-Control-Request-Method", method, "Access-Control-Request-Headers", "content-type, x-api-key"}
	}
	searchBody := `{"vector":[` + strings.Repeat("0.1,", 1279) + `0.1],"k":3}`
	type check struct {
		name, method, path, body string
		headers                  []string
		status                   int
		acao                     string // expected Access-Control-Allow-Origin ("" = absent)
		allowMethods             string // a method Access-Control-Allow-Methods must list
		code                     string // expected error code
	}
	for _, tc := range []struct {
		name    string
		origins []string
		keys    bool
		checks  []check
	}{
		{"off", nil, false, []check{
			{"plain OPTIONS lists the methods", "OPTIONS", search, "", nil, http.StatusNoContent, "", "", ""},
			{"preflight refused", "OPTIONS", search, "", preflight(shop, "POST"), http.StatusForbidden, "", "", "cors_rejected"},
			{"OPTIONS on no route", "OPTIONS", "/v1/nothing-here", "", nil, http.StatusNotFound, "", "", "not_found"},
			{"cross-origin write refused", "POST", search, searchBody, []string{"Origin", shop, "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden, "", "", "csrf_rejected"},
		}},
		{"one origin", []string{shop}, false, []check{
			{"preflight", "OPTIONS", search, "", preflight(shop, "POST"), http.StatusNoContent, shop, "POST", ""},
			{"preflight, default port spelled out", "OPTIONS", "/v1/collections/default/items/x", "", preflight("https://SHOP.example:443", "DELETE"), http.StatusNoContent, "https://SHOP.example:443", "DELETE", ""},
			{"search from the shop", "POST", search, searchBody, []string{"Origin", shop, "Sec-Fetch-Site", "cross-site"}, http.StatusOK, shop, "", ""},
			{"an error is readable too", "GET", "/v1/collections/nope", "", []string{"Origin", shop}, http.StatusNotFound, shop, "", "collection_not_found"},
			{"another origin's preflight", "OPTIONS", search, "", preflight("https://evil.example", "POST"), http.StatusForbidden, "", "", "cors_rejected"},
			{"another origin's write", "POST", search, searchBody, []string{"Origin", "https://evil.example"}, http.StatusForbidden, "", "", "csrf_rejected"},
			{"null origin", "POST", search, searchBody, []string{"Origin", "null"}, http.StatusForbidden, "", "", "csrf_rejected"},
		}},
		{"any origin with keys", []string{"*"}, true, []check{
			{"preflight", "OPTIONS", search, "", preflight("https://any.example", "POST"), http.StatusNoContent, "*", "POST", ""},
			{"search with a key header", "POST", search, searchBody, []string{"Origin", "https://any.example", "X-API-Key", secReadKey}, http.StatusOK, "*", "", ""},
			{"cookie from another origin", "POST", search, searchBody, []string{"Origin", "https://any.example", "Cookie", keyCookie + "=" + secReadKey}, http.StatusForbidden, "*", "", "csrf_rejected"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, func(c *config.Config) {
				c.Server.CORSOrigins = tc.origins
				if tc.keys {
					c.Auth.Keys = []string{"read:" + secReadKey, "write:" + secWriteKey}
				}
			})
			for _, ck := range tc.checks {
				var body *strings.Reader
				ct := ""
				if ck.body != "" {
					body, ct = strings.NewReader(ck.body), "application/json"
				}
				var r response
				if body != nil {
					r = do(t, ck.method, ts.url+ck.path, ct, body, ck.headers...)
				} else {
					r = do(t, ck.method, ts.url+ck.path, ct, nil, ck.headers...)
				}
				if r.status != ck.status {
					t.Errorf("%s: %d %s, want %d", ck.name, r.status, r.body, ck.status)
					continue
				}
				if ck.code != "" && r.errorCode(t) != ck.code {
					t.Errorf("%s: code %s, want %s", ck.name, r.errorCode(t), ck.code)
				}
				if got := r.header.Get("Access-Control-Allow-Origin"); got != ck.acao {
					t.Errorf("%s: Access-Control-Allow-Origin %q, want %q", ck.name, got, ck.acao)
				}
				if got := r.header.Get("Access-Control-Allow-Credentials"); got != "" {
					t.Errorf("%s: Access-Control-Allow-Credentials %q: credentials are never allowed cross-origin", ck.name, got)
				}
				if ck.allowMethods != "" {
					methods := strings.Split(r.header.Get("Access-Control-Allow-Methods"), ", ")
					if !slices.Contains(methods, ck.allowMethods) || !strings.Contains(strings.ToLower(r.header.Get("Access-Control-Allow-Headers")), "x-api-key") {
						t.Errorf("%s: allow methods %v, headers %q", ck.name, methods, r.header.Get("Access-Control-Allow-Headers"))
					}
				}
				if ck.method == "OPTIONS" && ck.status == http.StatusNoContent && !strings.Contains(r.header.Get("Allow"), "OPTIONS") {
					t.Errorf("%s: Allow %q", ck.name, r.header.Get("Allow"))
				}
				if ck.acao != "" && ck.method != "OPTIONS" && !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "ETag") {
					t.Errorf("%s: Access-Control-Expose-Headers %q", ck.name, r.header.Get("Access-Control-Expose-Headers"))
				}
			}
		})
	}
}
