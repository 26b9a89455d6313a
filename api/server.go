// Package api is Lookalike's HTTP front: the versioned REST API under /v1, health and readiness,
// Prometheus metrics, the OpenAPI document and the embedded web UI, on gofiber. Domain work lives in
// the packages below (index, embed, quality): api parses requests, calls them, and turns their
// results into JSON and their errors into statuses in one place (classify, errors.go).
//
// It owns admission control for the expensive path (decode + CNN): a bounded number of image
// requests embed at once, a bounded number wait, and the rest get 429 at once with Retry-After, so
// latency of admitted requests stays bounded under overload.
//
// # Caveats
//
// fiber reuses request buffers once a handler returns: everything kept beyond a handler (ids,
// metadata, image bytes handed to goroutines) is copied first.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/intel"
	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/lifecycle"
	"github.com/lookalike/lookalike/quality"
	"github.com/lookalike/lookalike/ui"
)

// Embedder is what the server needs of the embedding engine (*embed.Engine).
type Embedder interface {
	Embed(ctx context.Context, imgs []embed.Image) ([]embed.Embedding, error)
	Info() embed.Info
}

// Server serves one data directory with one embedding engine.
type Server struct {
	cfg     config.Config
	eng     Embedder
	db      *index.DB
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics
	stats   *statsRecorder
	admit   *admission
	quality *quality.Monitor
	keys    []apiKey
	app     *fiber.App
	ready   atomic.Bool
	started time.Time

	methods          methodTable          // which methods each route takes, for 405 (noRoute)
	corsPolicy       corsPolicy           // server.cors_origins (cors.go)
	downloads        downloads            // backup downloads in progress (admin.go), cut by shutdown
	fieldsCache      sync.Map             // collection name → fieldsCacheEntry
	signatures       intel.SignatureCache // pixel signatures for duplicate tiers (intel_handlers.go)
	engMu            sync.RWMutex
	engines          map[string]Embedder // by fingerprint: the models collections may use (lifecycle.go)
	lifecycle        *lifecycle.Manager
	projections      *lifecycle.Projections // learned projections of the data file (tune.go)
	lifecycleQueries recentQueries
	labelMu          sync.Mutex
	labelCache       map[string][]labelJSON
	photos           *photoStore                 // query photos of recent image searches (photos.go)
	cluster          atomic.Pointer[clusterMode] // nil: a single node; set: cluster mode (cluster.go)

	// bg owns the server's background goroutines; Close stops and waits.
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
}

type scope int

const (
	scopeRead scope = iota + 1
	scopeWrite
)

type apiKey struct {
	digest [32]byte
	scope  scope
}

// New builds a server. reg receives the server's metrics (and Go/process collectors); log may be nil.
func New(cfg config.Config, eng Embedder, db *index.DB, reg *prometheus.Registry, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	info := eng.Info()
	log = log.With("model", info.ModelID)
	s := &Server{
		cfg: cfg, eng: eng, db: db, log: log, reg: reg,
		metrics: newMetrics(reg),
		stats:   newStatsRecorder(cfg.Server.StatsWindow),
		started: time.Now(),

		corsPolicy: newCORSPolicy(cfg.Server.CORSOrigins),

		labelCache: map[string][]labelJSON{},
		photos:     newPhotoStore(photoStoreBytes, photoStoreEntries, photoTTL),
	}
	s.admit = newAdmission(cfg.Server, s.metrics)
	for _, k := range cfg.Auth.Keys {
		sc, key, _ := strings.Cut(k, ":")
		ak := apiKey{digest: sha256.Sum256([]byte(key)), scope: scopeRead}
		if sc == "write" {
			ak.scope = scopeWrite
		}
		s.keys = append(s.keys, ak)
	}
	s.metrics.modelInfo.WithLabelValues(info.ModelID, info.Fingerprint, info.Device, strconv.Itoa(info.Dims)).Set(1)
	s.app = fiber.New(fiber.Config{
		AppName:      "lookalike",
		BodyLimit:    cfg.Limits.MaxBodyBytes,
		ReadTimeout:  cfg.Server.ReadTimeout,
		WriteTimeout: cfg.Server.WriteTimeout,
		IdleTimeout:  2 * time.Minute,
		// A trailing slash never reaches another route's handler: a browser turns /items/.. into
		// /collections/{c}/, which lenient routing sent to "drop collection".
		StrictRouting:         true,
		DisableStartupMessage: true,
		ErrorHandler:          s.errorHandler,
	})
	var err error
	if s.quality, err = quality.New(cfg, eng, db, reg, log); err != nil {
		return nil, err
	}
	s.engines = map[string]Embedder{info.Fingerprint: eng}
	s.projections = lifecycle.NewProjections(db)
	s.quality.SetEngines(func(fp string) (quality.Embedder, bool) { return s.engineFor(fp) })
	s.lifecycle = lifecycle.New(db, lifecycle.Options{Engine: s.lifecycleEngine, Admit: s.admit.tryAcquire,
		Source: lifecycle.StoredSource, Probes: s.lifecycleProbes, Grace: cfg.Lifecycle.Grace, Projections: s.projections, Logger: log})
	s.routes()
	registered := map[string]bool{}
	for _, r := range s.app.GetRoutes(true) {
		registered[r.Method+" "+r.Path] = true
	}
	s.metrics.seedRequests(registered)
	bgCtx, cancel := context.WithCancel(context.Background())
	s.bgCancel = cancel
	s.quality.Start(bgCtx, &s.bg)
	s.lifecycle.Start(bgCtx, &s.bg)
	return s, nil
}

// App exposes the fiber app (tests drive it with app.Test).
func (s *Server) App() *fiber.App { return s.app }

// SetReady flips /readyz: the caller marks the server ready once the model is warm and indexes loaded.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Serve answers on ln until ctx is done, then shuts down gracefully: it stops accepting, lets
// in-flight requests finish (up to server.shutdown_timeout) and returns. The caller closes the DB.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	tl := &trackingListener{Listener: ln, conns: map[*trackedConn]struct{}{}}
	errc := make(chan error, 1)
	go func() { errc <- s.app.Listener(tl) }()
	select {
	case err := <-errc:
		s.stopBackground()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.ready.Store(false)
	timeout := s.cfg.Server.ShutdownTimeout
	s.log.Info("shutting down", "timeout", timeout)
	shutdown := make(chan error, 1)
	go func() { shutdown <- s.app.ShutdownWithTimeout(timeout) }()
	// A backup download may take longer than anyone waits for a stop: it gets the shutdown
	// timeout less a margin (fasthttp polls its connections every 100 ms), then its connection is
	// closed, so the stop ends in time and cleanly. The client sees a short body, which restore refuses.
	cutDownloads := time.After(timeout - min(timeout/4, time.Second))
	// fasthttp closes keep-alive connections between requests, but waits for a connection that
	// never sent a byte (a browser's preconnect) until its read timeout. It holds no request: close it.
	tick := time.NewTicker(50 * time.Millisecond)
	var err error
wait:
	for {
		// A connection gets a grace period to deliver its first request: one that sent it just
		// before the shutdown may not have been read yet.
		tl.closeSilent(time.Second)
		select {
		case err = <-shutdown:
			break wait
		case <-cutDownloads:
			s.downloads.cutAll()
		case <-tick.C:
		}
	}
	tick.Stop()
	<-errc
	s.stopBackground()
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// trackingListener remembers accepted connections and whether each has sent anything yet.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

type trackedConn struct {
	net.Conn
	l        *trackingListener
	accepted time.Time
	active   atomic.Bool
	once     sync.Once
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l, accepted: time.Now()}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.active.Store(true)
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// closeSilent closes the connections older than grace that have not sent a single byte.
func (l *trackingListener) closeSilent(grace time.Duration) {
	l.mu.Lock()
	var silent []*trackedConn
	for c := range l.conns {
		if !c.active.Load() && time.Since(c.accepted) > grace {
			silent = append(silent, c)
		}
	}
	l.mu.Unlock()
	for _, c := range silent {
		c.Conn.Close() // the server's own Close still runs and unregisters it
	}
}

func (s *Server) stopBackground() {
	s.bgCancel()
	s.bg.Wait()
}

// Close stops background work without serving (for servers driven only through App()).
func (s *Server) Close() { s.stopBackground() }

func (s *Server) routes() {
	app := s.app
	app.Use(requestid.New())
	app.Use(s.observe)
	app.Use(s.recoverPanic) // inside observe, so a panicking request is still counted and logged
	app.Use(securityHeaders)
	app.Use(s.cors)

	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", func(c *fiber.Ctx) error {
		if !s.ready.Load() {
			c.Set(fiber.HeaderRetryAfter, "1")
			return c.Status(http.StatusServiceUnavailable).JSON(fiber.Map{"status": "starting"})
		}
		return c.JSON(fiber.Map{"status": "ready"})
	})
	promHandler := adaptor.HTTPHandler(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	metricsHandler := func(c *fiber.Ctx) error {
		s.updateIndexMetrics()
		return promHandler(c)
	}
	if s.cfg.Server.MetricsRequireAuth {
		app.Get("/metrics", s.requireScope(scopeRead), metricsHandler)
	} else {
		app.Get("/metrics", metricsHandler)
	}
	app.Get("/openapi.json", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(openAPIDocument)
	})
	if s.cfg.Server.Pprof {
		app.Get("/debug/pprof/*", s.requireScope(scopeWrite), adaptor.HTTPHandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/")
			switch name {
			case "cmdline":
				pprof.Cmdline(w, r)
			case "profile":
				pprof.Profile(w, r)
			case "symbol":
				pprof.Symbol(w, r)
			case "trace":
				pprof.Trace(w, r)
			case "":
				pprof.Index(w, r)
			default:
				pprof.Handler(name).ServeHTTP(w, r)
			}
		}))
	}

	read, write := s.requireScope(scopeRead), s.requireScope(scopeWrite)
	v1 := app.Group("/v1")
	v1.Use(s.clusterGate)
	v1.Get("/cluster", read, s.handleClusterStatus)
	v1.Get("/stats", read, s.handleStats)
	v1.Get("/photos/:photo", read, s.handlePhoto)
	v1.Get("/admin/backup", write, s.handleBackup)
	v1.Get("/collections", read, s.handleListCollections)
	v1.Post("/collections", write, s.handleCreateCollection)
	v1.Get("/collections/:c", read, s.handleGetCollection)
	v1.Delete("/collections/:c", write, requireDropConfirmation, s.handleDropCollection)
	v1.Get("/collections/:c/fields", read, s.handleFields)
	v1.Post("/collections/:c/items\\:batch", write, s.handleBatch)
	v1.Post("/collections/:c/items", write, s.handleAddItem)
	v1.Get("/collections/:c/items", read, s.handleListItems)
	v1.Get("/collections/:c/items\\:count", read, s.handleCountItems)
	v1.Get("/collections/:c/items/:id/thumbnail", read, s.handleThumbnail)
	v1.Get("/collections/:c/items/:id/source", read, s.handleSource)
	v1.Get("/collections/:c/items/:id/similar", read, s.handleSimilar)
	v1.Get("/collections/:c/items/:id", read, s.handleGetItem)
	v1.Delete("/collections/:c/items/:id", write, s.handleDeleteItem)
	v1.Post("/collections/:c/search", read, s.handleSearch)
	s.registerQualityRoutes(v1, read)
	s.registerIntelRoutes(v1, read, write)
	s.registerEditRoutes(v1, write)
	s.registerQueryRoutes(v1, read)
	s.registerLifecycleRoutes(v1, read, write)
	v1.Use(s.noRoute("API route"))

	app.Use("/", s.uiKeyLogin)
	app.Use("/", filesystem.New(filesystem.Config{Root: http.FS(ui.Assets()), Index: "index.html", MaxAge: 60}))
	app.Use(s.noRoute("route"))
	s.methods = newMethodTable(app.GetRoutes(true))
}

// requireDropConfirmation: dropping a collection names it twice, in the path and in ?confirm=, so
// that no single stray request (a trailing slash, a mis-resolved relative URL) can drop one.
func requireDropConfirmation(c *fiber.Ctx) error {
	name, err := pathParam(c, "c")
	if err != nil {
		return err
	}
	if c.Query("confirm") != name {
		return errorf(http.StatusBadRequest, "confirmation_required",
			"dropping collection %q deletes all its items: repeat its name in the confirm query parameter (?confirm=%s)",
			name, url.QueryEscape(name)).with("parameter", "confirm")
	}
	return c.Next()
}

// noRoute answers a request no route took: 405 with Allow when the path exists for other
// methods, else 404.
func (s *Server) noRoute(what string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if allow := s.methods.allowed(c.Path()); len(allow) > 0 {
			c.Set(fiber.HeaderAllow, strings.Join(allow, ", "))
			return errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s (allowed: %s)",
				c.Method(), c.Path(), strings.Join(allow, ", ")).with("allow", allow)
		}
		return errorf(http.StatusNotFound, "not_found", "no %s %s %s", what, c.Method(), c.Path())
	}
}

// methodTable knows which methods each registered route pattern takes. fiber keeps its matcher
// private, and its own 405 never fires behind catch-all handlers, so the patterns are compiled
// here once, the way fiber reads them (case-insensitive, strict about trailing slashes).
type methodTable []methodRoute

type methodRoute struct {
	method string
	re     *regexp.Regexp
}

func newMethodTable(routes []fiber.Route) methodTable {
	var t methodTable
	for _, r := range routes {
		if r.Method == fiber.MethodConnect || r.Method == fiber.MethodTrace || r.Method == fiber.MethodOptions {
			continue
		}
		t = append(t, methodRoute{method: r.Method, re: routePattern(r.Path)})
	}
	return t
}

// routePattern turns a fiber route path into a regular expression: ":name" matches one path
// segment, "*" anything, "\\" escapes the next character.
func routePattern(path string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("(?i)^")
	for i := 0; i < len(path); i++ {
		switch ch := path[i]; {
		case ch == '\\' && i+1 < len(path):
			i++
			b.WriteString(regexp.QuoteMeta(path[i : i+1]))
		case ch == ':':
			for i+1 < len(path) && (path[i+1] == '_' || unicode.IsLetter(rune(path[i+1])) || unicode.IsDigit(rune(path[i+1]))) {
				i++
			}
			b.WriteString("[^/]+")
		case ch == '*':
			b.WriteString(".*")
		default:
			b.WriteString(regexp.QuoteMeta(path[i : i+1]))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// allowed lists the methods some route takes at path, sorted, without duplicates.
func (t methodTable) allowed(path string) []string {
	var out []string
	for _, r := range t {
		if !slices.Contains(out, r.method) && r.re.MatchString(path) {
			out = append(out, r.method)
		}
	}
	slices.Sort(out)
	return out
}

// observe records per-route metrics and logs each request with its id.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	s.metrics.inflight.Inc()
	s.stats.request()
	err := c.Next()
	if err != nil {
		// Let the error handler write the response now so the status below is the real one.
		if herr := s.app.ErrorHandler(c, err); herr != nil {
			s.log.Error("error handler failed", "err", herr)
		}
	}
	s.metrics.inflight.Dec()
	route, status := routeLabel(c), c.Response().StatusCode()
	s.metrics.requests.WithLabelValues(route, methodLabel(c.Method()), strconv.Itoa(status)).Inc()
	s.metrics.duration.WithLabelValues(route, methodLabel(c.Method()), strconv.Itoa(status/100)+"xx").Observe(time.Since(start).Seconds())
	if strings.HasPrefix(route, "/v1/") {
		s.log.Info("request", "request_id", requestID(c), "method", c.Method(), "route", route,
			"status", status, "ms", float64(time.Since(start).Microseconds())/1000)
	}
	return nil
}

func securityHeaders(c *fiber.Ctx) error {
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	return c.Next()
}

// routeLabel is the matched route pattern, never the raw path, so label values stay bounded.
func routeLabel(c *fiber.Ctx) string {
	r := c.Route()
	if r == nil || r.Path == "" || r.Path == "/" && c.Path() != "/" {
		return "other"
	}
	if !strings.HasPrefix(r.Path, "/v1") && !strings.HasPrefix(r.Path, "/healthz") && !strings.HasPrefix(r.Path, "/readyz") &&
		!strings.HasPrefix(r.Path, "/metrics") && !strings.HasPrefix(r.Path, "/openapi") {
		return "ui"
	}
	return r.Path
}

// methodLabel maps the method to a constant: fiber's c.Method() aliases a reused buffer, and label
// values outlive the request.
func methodLabel(m string) string {
	for _, known := range [...]string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"} {
		if m == known {
			return known
		}
	}
	return "OTHER"
}

func requestID(c *fiber.Ctx) string {
	if v, ok := c.Locals("requestid").(string); ok {
		return v
	}
	return ""
}

// requireScope checks the API key (Authorization: Bearer KEY, or X-API-Key) when keys are
// configured. Digests are compared in constant time, over every key, so timing reveals nothing.
func (s *Server) requireScope(need scope) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if len(s.keys) == 0 {
			if err := s.checkCSRF(c, false); err != nil {
				return err
			}
			return c.Next()
		}
		key := c.Get("X-API-Key")
		if auth := c.Get(fiber.HeaderAuthorization); key == "" && len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			key = strings.TrimSpace(auth[7:])
		}
		if key == "" {
			// The web UI's requests (thumbnails in <img> included) carry the key as a cookie, which
			// the browser attaches whichever page made the request.
			key = c.Cookies(keyCookie)
			if err := s.checkCSRF(c, key != ""); err != nil {
				return err
			}
		}
		if key == "" {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="lookalike"`)
			return errorf(http.StatusUnauthorized, "unauthorized", "an API key is required (Authorization: Bearer KEY)")
		}
		granted := s.scopeOf(key)
		switch {
		case granted == 0:
			return errorf(http.StatusUnauthorized, "unauthorized", "the API key is not valid")
		case granted < need:
			return errorf(http.StatusForbidden, "forbidden", "this API key may only read")
		}
		return c.Next()
	}
}

// keyCookie holds the API key for the web UI: set by visiting /?key=KEY once (HttpOnly, SameSite
// Strict, so neither page scripts nor other sites can use it).
const keyCookie = "lookalike_key"

// scopeOf compares the key's digest with every configured key in constant time.
func (s *Server) scopeOf(key string) scope {
	digest := sha256.Sum256([]byte(key))
	var granted scope
	for _, k := range s.keys {
		if subtle.ConstantTimeCompare(digest[:], k.digest[:]) == 1 && k.scope > granted {
			granted = k.scope
		}
	}
	return granted
}

// uiKeyLogin turns /?key=KEY into the UI's key cookie and redirects to a clean URL, so the key
// neither stays in the address bar nor in the history.
func (s *Server) uiKeyLogin(c *fiber.Ctx) error {
	key := c.Query("key")
	if key == "" || len(s.keys) == 0 || c.Path() != "/" {
		return c.Next()
	}
	// Only a link the user opened (typed, bookmarked, or from this origin) logs in: another page
	// must not plant its own key in this browser.
	if site := c.Get("Sec-Fetch-Site"); site != "" && site != "none" && site != "same-origin" {
		return errorf(http.StatusForbidden, "csrf_rejected", "a login link opened from another site is refused: open it directly")
	}
	if s.scopeOf(key) == 0 {
		return errorf(http.StatusUnauthorized, "unauthorized", "the API key is not valid")
	}
	c.Cookie(&fiber.Cookie{Name: keyCookie, Value: strings.Clone(key), Path: "/", HTTPOnly: true,
		SameSite: fiber.CookieSameSiteStrictMode, Secure: c.Protocol() == "https", MaxAge: 30 * 24 * 3600})
	return c.Redirect("/", http.StatusSeeOther)
}

// checkCSRF refuses requests that another page may have made the browser send. Safe methods
// pass. With cookie authentication (the browser adds the cookie to any page's request, and
// SameSite does not separate ports of one host) the request must prove it comes from this origin:
// Sec-Fetch-Site: same-origin or a matching Origin, and a body type that a cross-origin HTML form
// cannot send (JSON, multipart, which carries the Origin, or a raw image). Otherwise (header keys,
// no keys) only requests the browser marks as coming from another origin are refused, unless
// that origin is in server.cors_origins: API clients send neither header.
func (s *Server) checkCSRF(c *fiber.Ctx, cookieAuth bool) error {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return nil
	}
	site, origin := c.Get("Sec-Fetch-Site"), c.Get(fiber.HeaderOrigin)
	sameOrigin := site == "same-origin" || origin != "" && (sameOriginAs(c, origin) || !cookieAuth && s.corsPolicy.allows(origin))
	if !sameOrigin && (cookieAuth || site != "" || origin != "") {
		return errorf(http.StatusForbidden, "csrf_rejected",
			"a cookie-authenticated or browser request that changes data must come from this server's own page (Origin or Sec-Fetch-Site: same-origin); API clients send Authorization or X-API-Key").
			with("origin", origin).with("sec_fetch_site", site)
	}
	if cookieAuth && c.Method() != fiber.MethodDelete && !csrfSafeBody(mediaType(c)) {
		// A DELETE carries no body, and a cross-origin one needs a CORS preflight this server never grants.
		return errorf(http.StatusForbidden, "csrf_rejected",
			"a cookie-authenticated request must send JSON, multipart/form-data or an image, not %q", mediaType(c))
	}
	return nil
}

// sameOriginAs says whether origin is this request's own scheme, host and port.
func sameOriginAs(c *fiber.Ctx, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" && u.Path != "/" {
		return false
	}
	scheme := c.Protocol()
	if !strings.EqualFold(u.Scheme, scheme) {
		return false
	}
	return strings.EqualFold(withPort(u.Host, scheme), withPort(string(c.Request().Host()), scheme))
}

// withPort adds the scheme's default port to a host that has none.
func withPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return net.JoinHostPort(strings.Trim(host, "[]"), "443")
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "80")
}

// csrfSafeBody: body types a cross-origin page can send only after a CORS preflight (JSON, raw
// images), plus multipart, which the UI uploads with and which checkCSRF's origin test guards.
// text/plain, form-urlencoded and an empty body are what a forged form or beacon sends.
func csrfSafeBody(mt string) bool {
	switch {
	case mt == fiber.MIMEApplicationJSON, mt == "application/x-ndjson", mt == "application/jsonl", strings.HasSuffix(mt, "+json"),
		mt == fiber.MIMEMultipartForm, strings.HasPrefix(mt, "image/"), mt == "application/octet-stream":
		return true
	}
	return false
}

// updateIndexMetrics sets the per-collection gauges; it runs at scrape time, so they are never stale
// and cost nothing between scrapes.
func (s *Server) updateIndexMetrics() {
	s.metrics.indexItems.Reset()
	s.metrics.indexLevels.Reset()
	s.metrics.aliasGen.Reset()
	for _, ci := range s.db.Collections() {
		s.metrics.indexItems.WithLabelValues(ci.Name).Set(float64(ci.Count))
		s.metrics.indexLevels.WithLabelValues(ci.Name).Set(float64(ci.Levels))
		// Every base, also one whose generation 1 was dropped after a switch.
		base, _ := index.ParseGeneration(ci.Name)
		_, gen := index.ParseGeneration(s.db.Target(base))
		s.metrics.aliasGen.WithLabelValues(base).Set(float64(gen))
	}
}

// admission bounds concurrent embedding work (see the package comment).
type admission struct {
	slots      chan struct{}
	queued     atomic.Int64
	maxQueued  int64
	wait       time.Duration
	retryAfter int
	m          *metrics
}

func newAdmission(cfg config.Server, m *metrics) *admission {
	ra := int(cfg.RetryAfter.Round(time.Second) / time.Second)
	if ra < 1 {
		ra = 1
	}
	return &admission{slots: make(chan struct{}, cfg.MaxInflightEmbeds), maxQueued: int64(cfg.MaxQueuedEmbeds), wait: cfg.QueueWait, retryAfter: ra, m: m}
}

// tryAcquire takes a free inference slot without waiting, for optional work.
func (a *admission) tryAcquire() (release func(), ok bool) {
	select {
	case a.slots <- struct{}{}:
		return func() { <-a.slots }, true
	default:
		return nil, false
	}
}

// acquire takes an inference slot or says why not; release must be called once after success.
func (a *admission) acquire(ctx context.Context) (release func(), err error) {
	select {
	case a.slots <- struct{}{}:
		a.m.admission.WithLabelValues("admitted").Inc()
		return func() { <-a.slots }, nil
	default:
	}
	if a.queued.Add(1) > a.maxQueued {
		a.queued.Add(-1)
		a.m.admission.WithLabelValues("rejected_full").Inc()
		e := errorf(http.StatusTooManyRequests, "overloaded", "too many image requests in flight; retry shortly")
		e.RetryAfter = a.retryAfter
		return nil, e
	}
	a.m.queueDepth.Inc()
	defer func() {
		a.queued.Add(-1)
		a.m.queueDepth.Dec()
	}()
	timer := time.NewTimer(a.wait)
	defer timer.Stop()
	select {
	case a.slots <- struct{}{}:
		a.m.admission.WithLabelValues("admitted").Inc()
		return func() { <-a.slots }, nil
	case <-timer.C:
		a.m.admission.WithLabelValues("rejected_timeout").Inc()
		e := errorf(http.StatusServiceUnavailable, "busy", "no inference slot became free in %s; retry shortly", a.wait)
		e.RetryAfter = a.retryAfter
		return nil, e
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
