package api

// Security over real HTTP: API key scopes on every route, keys never logged or echoed, key
// comparison edge cases, and the browser security headers on the UI.

import (
	"bytes"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/internal/config"
)

const (
	secReadKey  = "read-key-SECRET-4f1c2a9e77"
	secWriteKey = "write-key-SECRET-b83d6e0c51"
	secWrongKey = "wrong-key-SECRET-0c0ffee000"
)

// newLoggedServer is newTestServer with the server's log (debug level, every request) captured.
func newLoggedServer(t *testing.T, mutate func(*config.Config)) (*testServer, *syncLog) {
	t.Helper()
	logs := &syncLog{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return startTestServer(t, testEngine(t), log, mutate), logs
}

type syncLog struct {
	mu  chan struct{}
	buf strings.Builder
}

func (l *syncLog) lock() {
	if l.mu == nil {
		l.mu = make(chan struct{}, 1)
	}
	l.mu <- struct{}{}
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.lock()
	defer func() { <-l.mu }()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.lock()
	defer func() { <-l.mu }()
	return l.buf.String()
}

// concretePath fills a route pattern's parameters.
func concretePath(p string) string {
	p = strings.ReplaceAll(p, "\\:", ":")
	// Whole parameters only: items:count is a custom method, not a parameter named count.
	p = regexp.MustCompile(`:c\b`).ReplaceAllString(p, "default")
	p = regexp.MustCompile(`:id\b`).ReplaceAllString(p, "ukbench00000")
	return strings.ReplaceAll(p, "*", "")
}

// readRoutes are the non-GET routes a read key may call: they only compute (or record click
// feedback) and change no stored item. A new POST route that only reads belongs here; any other
// must require the write scope.
var readRoutes = map[string]bool{
	"POST /v1/collections/:c/search":           true,
	"POST /v1/collections/:c/search/explain":   true,
	`POST /v1/collections/:c/tags\:suggest`:    true,
	"POST /v1/collections/:c/feedback":         true,
	"POST /v1/collections/:c/recommend":        true,
	`POST /v1/collections/:c/recommend\:batch`: true,
	`POST /v1/collections/:c/search\:batch`:    true,
	`POST /v1/collections/:c/similar\:batch`:   true,
}

// openRoutes answer without any key.
var openRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true, "/openapi.json": true}

// TestAuthEveryRoute walks the router itself, so a route added later is covered: every /v1 and
// debug route refuses a missing or unknown key (401), every route that writes refuses a read key
// (403), and the write key is let through.
func TestAuthEveryRoute(t *testing.T) {
	ts, _ := newLoggedServer(t, func(c *config.Config) {
		c.Auth.Keys = []string{"read:" + secReadKey, "write:" + secWriteKey}
		c.Server.Pprof = true
	})
	seen := map[string]bool{}
	checked := 0
	for _, r := range ts.App().GetRoutes(true) {
		if r.Method == "HEAD" || r.Method == "CONNECT" || r.Method == "TRACE" || r.Method == "OPTIONS" {
			continue
		}
		key := r.Method + " " + r.Path
		if seen[key] || !(strings.HasPrefix(r.Path, "/v1/") || strings.HasPrefix(r.Path, "/debug/")) {
			if !seen[key] && !openRoutes[r.Path] && r.Path != "/" {
				t.Errorf("route %s is outside /v1 and not a known open route: check it needs a key", key)
			}
			seen[key] = true
			continue
		}
		seen[key] = true
		path := concretePath(r.Path)
		if strings.HasSuffix(path, "/debug/pprof/") {
			path += "cmdline"
		}
		t.Run(key, func(t *testing.T) {
			u := ts.url + path
			for _, h := range [][]string{nil, {"Authorization", "Bearer " + secWrongKey}, {"X-API-Key", secWrongKey}} {
				if res := do(t, r.Method, u, "application/json", strings.NewReader("{}"), h...); res.status != 401 || res.errorCode(t) != "unauthorized" {
					t.Errorf("headers %v: %d %s, want 401 unauthorized", h, res.status, res.body)
				}
			}
			writes := r.Method != "GET" && !readRoutes[key] || strings.Contains(r.Path, "/admin/") || strings.HasPrefix(r.Path, "/debug/")
			res := do(t, r.Method, u, "application/json", strings.NewReader("{}"), "X-API-Key", secReadKey)
			switch {
			case writes && (res.status != 403 || res.errorCode(t) != "forbidden"):
				t.Errorf("read key on a write route: %d %.200s, want 403 forbidden", res.status, res.body)
			case !writes && (res.status == 401 || res.status == 403):
				t.Errorf("read key on a read route: %d %.200s", res.status, res.body)
			}
			if r.Method == "DELETE" {
				return // the write key would really delete
			}
			if res := do(t, r.Method, u, "application/json", strings.NewReader("{}"), "Authorization", "Bearer "+secWriteKey); res.status == 401 || res.status == 403 {
				t.Errorf("write key refused: %d %.200s", res.status, res.body)
			}
		})
		checked++
	}
	t.Logf("%d routes checked", checked)
	if checked < 12 {
		t.Fatalf("only %d routes checked: the route walk is broken", checked)
	}
}

// TestAuthKeyVariants: only the exact key is accepted: prefixes, extensions, case changes, other
// schemes and empty bearer tokens are refused.
func TestAuthKeyVariants(t *testing.T) {
	ts, _ := newLoggedServer(t, func(c *config.Config) { c.Auth.Keys = []string{"read:" + secReadKey, "write:" + secWriteKey} })
	u := ts.url + "/v1/collections"
	for _, h := range [][]string{
		{"Authorization", "Bearer " + secReadKey[:len(secReadKey)-1]},
		{"Authorization", "Bearer " + secReadKey + "x"},
		{"Authorization", "Bearer " + strings.ToUpper(secReadKey)},
		{"Authorization", "Basic " + secReadKey},
		{"Authorization", "Bearer"},
		{"Authorization", "Bearer "},
		{"Authorization", secReadKey},
		{"X-API-Key", " "},
		{"X-API-Key", "read:" + secReadKey},
	} {
		if r := do(t, "GET", u, "", nil, h...); r.status != 401 {
			t.Errorf("%q: %d, want 401", h, r.status)
		}
	}
	for _, h := range [][]string{
		{"Authorization", "Bearer " + secReadKey},
		{"Authorization", "bearer " + secReadKey},
		{"Authorization", "BEARER   " + secReadKey + "  "},
		{"X-API-Key", secReadKey},
	} {
		if r := do(t, "GET", u, "", nil, h...); r.status != 200 {
			t.Errorf("%q: %d, want 200", h, r.status)
		}
	}
}

// TestAuthKeysNeverLogged drives successful, refused and failing requests with valid and invalid
// keys through both headers, then checks the server's debug log, /metrics, /v1/stats and every
// response body: no key (nor its Authorization header value) appears anywhere.
func TestAuthKeysNeverLogged(t *testing.T) {
	ts, logs := newLoggedServer(t, func(c *config.Config) { c.Auth.Keys = []string{"read:" + secReadKey, "write:" + secWriteKey} })
	jpg := photo(t, ukName(0))
	var bodies []string
	record := func(r response) { bodies = append(bodies, string(r.body), r.header.Get("WWW-Authenticate")) }
	for _, key := range []string{secReadKey, secWriteKey, secWrongKey} {
		for _, hdr := range []string{"Authorization", "X-API-Key"} {
			v := key
			if hdr == "Authorization" {
				v = "Bearer " + key
			}
			body, ct := multipartBody(t, part{"image", "a.jpg", jpg}, part{"id", "", []byte("logged")})
			record(do(t, "POST", ts.url+"/v1/collections/default/items", ct, body, hdr, v))
			record(do(t, "GET", ts.url+"/v1/collections/default/items/nope", "", nil, hdr, v))
			record(do(t, "POST", ts.url+"/v1/collections/default/search", "application/json", strings.NewReader(`{"k":`), hdr, v))
			record(do(t, "GET", ts.url+"/v1/collections/default/items?key="+key, "", nil, hdr, v))
			record(do(t, "DELETE", ts.url+"/v1/collections/nope", "", nil, hdr, v))
		}
	}
	record(do(t, "GET", ts.url+"/metrics", "", nil))
	record(do(t, "GET", ts.url+"/v1/stats", "", nil, "X-API-Key", secReadKey))
	log := logs.String()
	if !strings.Contains(log, "request_id") {
		t.Fatalf("the log captured nothing: %q", log)
	}
	for _, key := range []string{secReadKey, secWriteKey, secWrongKey, "SECRET"} {
		if strings.Contains(log, key) {
			for _, line := range strings.Split(log, "\n") {
				if strings.Contains(line, key) {
					t.Errorf("log line holds a key: %s", line)
				}
			}
		}
		for _, b := range bodies {
			if strings.Contains(b, key) {
				t.Errorf("a response echoes a key: %.300s", b)
			}
		}
	}
}

// TestUISecurityHeaders: the page, its HTML and its scripts are served with a CSP that forbids
// inline script and framing, nosniff and frame denial; the HTML itself has no inline script or
// inline event handler (which the CSP would block anyway); API responses carry nosniff too.
func TestUISecurityHeaders(t *testing.T) {
	ts, _ := newLoggedServer(t, nil)
	page := do(t, "GET", ts.url+"/", "", nil)
	if page.status != 200 || !strings.Contains(page.header.Get("Content-Type"), "text/html") {
		t.Fatalf("/: %d %s", page.status, page.header.Get("Content-Type"))
	}
	scripts := regexp.MustCompile(`<script[^>]*\bsrc="([^"]+)"`).FindAllStringSubmatch(string(page.body), -1)
	if len(scripts) == 0 {
		t.Fatalf("index.html loads no script: %.500s", page.body)
	}
	paths := []string{"/", "/index.html", "/" + strings.TrimPrefix(scripts[0][1], "/"), "/v1/collections", "/no-such-page"}
	for _, p := range paths {
		r := do(t, "GET", ts.url+p, "", nil)
		h := r.header
		csp := h.Get("Content-Security-Policy")
		directives := map[string]string{}
		for _, d := range strings.Split(csp, ";") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), " ")
			directives[name] = val
		}
		script := directives["script-src"]
		if script == "" {
			script = directives["default-src"]
		}
		switch {
		case csp == "":
			t.Errorf("%s: no Content-Security-Policy", p)
		case script == "" || strings.Contains(script, "'unsafe-inline'") || strings.Contains(script, "'unsafe-eval'") || strings.Contains(script, "*") || strings.Contains(script, "data:"):
			t.Errorf("%s: script-src %q allows inline, eval or foreign script", p, script)
		case directives["frame-ancestors"] != "'none'":
			t.Errorf("%s: frame-ancestors %q, want 'none'", p, directives["frame-ancestors"])
		case directives["object-src"] == "" && directives["default-src"] != "'self'" && directives["default-src"] != "'none'":
			t.Errorf("%s: no object-src and a permissive default-src", p)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", p, h.Get("X-Content-Type-Options"))
		}
		if h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: X-Frame-Options %q", p, h.Get("X-Frame-Options"))
		}
		if acao := h.Get("Access-Control-Allow-Origin"); acao == "*" {
			t.Errorf("%s: Access-Control-Allow-Origin *", p)
		}
	}
	js := do(t, "GET", ts.url+"/"+strings.TrimPrefix(scripts[0][1], "/"), "", nil)
	if js.status != 200 || !strings.Contains(js.header.Get("Content-Type"), "javascript") {
		t.Errorf("%s: %d %q (a script must be served as JavaScript under nosniff)", scripts[0][1], js.status, js.header.Get("Content-Type"))
	}
	html := string(page.body)
	for _, m := range regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(html, -1) {
		if !strings.Contains(m[1], "src=") && strings.TrimSpace(m[2]) != "" && !strings.Contains(m[1], "application/json") && !strings.Contains(m[1], "importmap") {
			t.Errorf("inline script in index.html: %.200s", m[0])
		}
	}
	if m := regexp.MustCompile(`(?i)\son[a-z]+\s*=\s*["']`).FindString(html); m != "" {
		t.Errorf("inline event handler in index.html: %q", m)
	}
	if strings.Contains(strings.ToLower(html), "javascript:") {
		t.Errorf("javascript: URL in index.html")
	}
	// The API's JSON error bodies are never rendered as HTML by a browser that sniffs.
	r := do(t, "GET", ts.url+"/v1/collections/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "", nil)
	if ct := r.header.Get("Content-Type"); r.status != http.StatusNotFound || !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error for a name holding markup: %d %q", r.status, ct)
	}
}

// TestCSRF: the UI's key cookie goes along with any request the browser makes to this host,
// whichever page asked, and SameSite=Strict does not stop a page on another port of the same host
// (same site). So a cookie-authenticated request that changes something must come from the UI's
// own origin (Origin or Sec-Fetch-Site says so) with a body type no HTML form can send without
// the origin showing; header keys are unaffected. Without keys, a browser request that says it
// comes from another origin is refused too.
func TestCSRF(t *testing.T) {
	ts, _ := newLoggedServer(t, func(c *config.Config) { c.Auth.Keys = []string{"read:" + secReadKey, "write:" + secWriteKey} })
	jpg := reencode(t, photo(t, ukName(2)), 0.25, 70)
	cookie := []string{"Cookie", keyCookie + "=" + secWriteKey}
	self := ts.url                    // http://127.0.0.1:PORT
	otherPort := "http://127.0.0.1:1" // same site, another origin
	const mpCT = "multipart/form-data; boundary=csrf-boundary"
	item := func(id string) io.Reader {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		w.SetBoundary("csrf-boundary")
		fw, _ := w.CreateFormFile("image", "x.jpg")
		fw.Write(jpg)
		w.WriteField("id", id)
		w.Close()
		return &buf
	}
	items := ts.url + "/v1/collections/default/items"
	apply := ts.url + "/v1/collections/default/tags:apply"
	type req struct {
		name, method, url, ct string
		body                  func() io.Reader
		headers               []string
		want                  int // 0: anything but 403 csrf_rejected
	}
	body := func(id string) func() io.Reader { return func() io.Reader { return item(id) } }
	if r := do(t, "POST", items, mpCT, item("victim"), "X-API-Key", secWriteKey); r.status != 201 {
		t.Fatalf("seed: %d %s", r.status, r.body)
	}
	empty := func() io.Reader { return nil }
	js := func(s string) func() io.Reader { return func() io.Reader { return strings.NewReader(s) } }
	with := func(h ...string) []string { return append(append([]string{}, cookie...), h...) }
	for _, tc := range []req{
		{"cookie, multipart from another port", "POST", items, mpCT, body("csrf-1"), with("Origin", otherPort), 403},
		{"cookie, empty tags:apply from another port", "POST", apply, "", empty, with("Origin", otherPort), 403},
		{"cookie, same-site fetch", "POST", items, mpCT, body("csrf-2"), with("Sec-Fetch-Site", "same-site"), 403},
		{"cookie, cross-site fetch", "POST", apply, "application/json", js(`{}`), with("Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"), 403},
		{"cookie, no origin at all", "POST", items, mpCT, body("csrf-3"), with(), 403},
		{"cookie, origin null", "POST", items, mpCT, body("csrf-4"), with("Origin", "null"), 403},
		{"cookie, https origin on http", "POST", items, mpCT, body("csrf-5"), with("Origin", strings.Replace(self, "http:", "https:", 1)), 403},
		{"cookie, delete from another port", "DELETE", items + "/victim", "", empty, with("Origin", otherPort), 403},
		{"cookie, same origin, text/plain", "POST", apply, "text/plain", js(`{}`), with("Origin", self), 403},
		{"cookie, same origin, form-urlencoded", "POST", apply, "application/x-www-form-urlencoded", js(`a=b`), with("Origin", self), 403},
		{"cookie, same origin, empty body", "POST", apply, "", empty, with("Sec-Fetch-Site", "same-origin"), 403},
		{"cookie, same origin, multipart", "POST", items, mpCT, body("csrf-ok-1"), with("Origin", self), 201},
		{"cookie, same-origin fetch, json", "POST", apply, "application/json", js(`{"dry_run":true}`), with("Sec-Fetch-Site", "same-origin"), 0},
		{"cookie, same origin, raw image", "POST", ts.url + "/v1/collections/default/search", "image/jpeg", func() io.Reader { return bytes.NewReader(jpg) }, with("Origin", self, "Sec-Fetch-Site", "same-origin"), 200},
		{"cookie, same origin, delete", "DELETE", items + "/csrf-ok-1", "", empty, with("Origin", self), 200},
		{"cookie, GET from another port", "GET", items, "", empty, with("Origin", otherPort, "Sec-Fetch-Site", "same-site"), 200},
		{"header key from another port", "POST", items, mpCT, body("csrf-ok-2"), []string{"X-API-Key", secWriteKey, "Origin", otherPort}, 201},
		{"bearer key, empty body", "POST", apply, "", empty, []string{"Authorization", "Bearer " + secWriteKey, "Sec-Fetch-Site", "cross-site"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, tc.url, tc.ct, tc.body(), tc.headers...)
			switch {
			case tc.want == 403 && (r.status != 403 || r.errorCode(t) != "csrf_rejected"):
				t.Errorf("%d %.300s, want 403 csrf_rejected", r.status, r.body)
			case tc.want == 0 && r.status == 403:
				t.Errorf("%d %.300s, want it let through", r.status, r.body)
			case tc.want != 0 && tc.want != 403 && r.status != tc.want:
				t.Errorf("%d %.300s, want %d", r.status, r.body, tc.want)
			}
		})
	}
	for _, id := range []string{"csrf-1", "csrf-2", "csrf-3", "csrf-4", "csrf-5"} {
		if r := do(t, "GET", items+"/"+id, "", nil, "X-API-Key", secReadKey); r.status != 404 {
			t.Errorf("refused item %s was stored: %d", id, r.status)
		}
	}
	if r := do(t, "GET", items+"/victim", "", nil, "X-API-Key", secReadKey); r.status == 404 {
		t.Errorf("the refused cross-origin delete went through")
	}

	// The login link: another page must not plant its own key in the browser.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		site  string
		login bool
	}{{"", true}, {"none", true}, {"same-origin", true}, {"same-site", false}, {"cross-site", false}} {
		req, _ := http.NewRequest("GET", ts.url+"/?key="+secWriteKey, nil)
		if tc.site != "" {
			req.Header.Set("Sec-Fetch-Site", tc.site)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		set := resp.Header.Get("Set-Cookie") != ""
		if set != tc.login || tc.login && resp.StatusCode != http.StatusSeeOther || !tc.login && resp.StatusCode != 403 {
			t.Errorf("login with Sec-Fetch-Site %q: %d, cookie set %v", tc.site, resp.StatusCode, set)
		}
	}
}

// TestCSRFWithoutKeys: with no keys configured anyone may write, but a browser must not be made
// to do it for another site: requests marked cross-origin by the browser are refused, clients that
// send no such headers (curl, SDKs) are not.
func TestCSRFWithoutKeys(t *testing.T) {
	ts, _ := newLoggedServer(t, nil)
	jpg := reencode(t, photo(t, ukName(2)), 0.25, 70)
	items := ts.url + "/v1/collections/default/items"
	for _, tc := range []struct {
		name    string
		headers []string
		want    int
	}{
		{"curl", nil, 201},
		{"same origin", []string{"Origin", ts.url, "Sec-Fetch-Site", "same-origin"}, 201},
		{"another port", []string{"Origin", "http://127.0.0.1:1"}, 403},
		{"cross-site", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, 403},
		{"same-site, no origin", []string{"Sec-Fetch-Site", "same-site"}, 403},
	} {
		b, ct := multipartBody(t, part{"image", "x.jpg", jpg}, part{"id", "", []byte("nokey-" + strings.ReplaceAll(tc.name, " ", "-"))})
		r := do(t, "POST", items, ct, b, tc.headers...)
		if r.status != tc.want || tc.want == 403 && r.errorCode(t) != "csrf_rejected" {
			t.Errorf("%s: %d %.300s, want %d", tc.name, r.status, r.body, tc.want)
		}
	}
}
