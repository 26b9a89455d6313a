// Package api is Lookalike's HTTP front: the versioned REST API under /v1, health and readiness,
// Prometheus metrics, the OpenAPI document and the embedded web UI, on gofiber.
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	quality *qualityMonitor
	keys    []apiKey
	app     *fiber.App
	ready   atomic.Bool
	started time.Time

	fieldsCache sync.Map             // collection name → fieldsCacheEntry
	signatures  intel.SignatureCache // pixel signatures for duplicate tiers (intel_handlers.go)
	labelMu     sync.Mutex
	labelCache  map[string][]labelJSON

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

		labelCache: map[string][]labelJSON{},
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
		AppName:               "lookalike",
		BodyLimit:             cfg.Limits.MaxBodyBytes,
		ReadTimeout:           cfg.Server.ReadTimeout,
		WriteTimeout:          cfg.Server.WriteTimeout,
		IdleTimeout:           2 * time.Minute,
		DisableStartupMessage: true,
		ErrorHandler:          s.errorHandler,
	})
	s.quality = newQualityMonitor(cfg, eng, db, reg, log)
	s.routes()
	bgCtx, cancel := context.WithCancel(context.Background())
	s.bgCancel = cancel
	s.quality.start(bgCtx, &s.bg)
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
	s.log.Info("shutting down", "timeout", s.cfg.Server.ShutdownTimeout)
	shutdown := make(chan error, 1)
	go func() { shutdown <- s.app.ShutdownWithTimeout(s.cfg.Server.ShutdownTimeout) }()
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
	app.Use(securityHeaders)

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
	v1.Get("/stats", read, s.handleStats)
	v1.Get("/admin/backup", write, s.handleBackup)
	v1.Get("/collections", read, s.handleListCollections)
	v1.Post("/collections", write, s.handleCreateCollection)
	v1.Get("/collections/:c", read, s.handleGetCollection)
	v1.Delete("/collections/:c", write, s.handleDropCollection)
	v1.Get("/collections/:c/fields", read, s.handleFields)
	v1.Post("/collections/:c/items\\:batch", write, s.handleBatch)
	v1.Post("/collections/:c/items", write, s.handleAddItem)
	v1.Get("/collections/:c/items", read, s.handleListItems)
	v1.Get("/collections/:c/items/:id/thumbnail", read, s.handleThumbnail)
	v1.Get("/collections/:c/items/:id/similar", read, s.handleSimilar)
	v1.Get("/collections/:c/items/:id", read, s.handleGetItem)
	v1.Delete("/collections/:c/items/:id", write, s.handleDeleteItem)
	v1.Post("/collections/:c/search", read, s.handleSearch)
	s.quality.registerRoutes(v1, read, write)
	s.registerIntelRoutes(v1, read, write)
	v1.Use(func(c *fiber.Ctx) error {
		return errorf(http.StatusNotFound, "not_found", "no API route %s %s", c.Method(), c.Path())
	})

	app.Use("/", s.uiKeyLogin)
	app.Use("/", filesystem.New(filesystem.Config{Root: http.FS(ui.Assets()), Index: "index.html", MaxAge: 60}))
	app.Use(func(c *fiber.Ctx) error {
		return errorf(http.StatusNotFound, "not_found", "no route %s %s", c.Method(), c.Path())
	})
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
			return c.Next()
		}
		key := c.Get("X-API-Key")
		if auth := c.Get(fiber.HeaderAuthorization); key == "" && len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			key = strings.TrimSpace(auth[7:])
		}
		if key == "" {
			// The web UI's requests (thumbnails in <img> included) carry the key as a cookie.
			key = c.Cookies(keyCookie)
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
	if s.scopeOf(key) == 0 {
		return errorf(http.StatusUnauthorized, "unauthorized", "the API key is not valid")
	}
	c.Cookie(&fiber.Cookie{Name: keyCookie, Value: strings.Clone(key), Path: "/", HTTPOnly: true,
		SameSite: fiber.CookieSameSiteStrictMode, Secure: c.Protocol() == "https", MaxAge: 30 * 24 * 3600})
	return c.Redirect("/", http.StatusSeeOther)
}

// updateIndexMetrics sets the per-collection gauges; it runs at scrape time, so they are never stale
// and cost nothing between scrapes.
func (s *Server) updateIndexMetrics() {
	s.metrics.indexItems.Reset()
	s.metrics.indexLevels.Reset()
	for _, ci := range s.db.Collections() {
		s.metrics.indexItems.WithLabelValues(ci.Name).Set(float64(ci.Count))
		s.metrics.indexLevels.WithLabelValues(ci.Name).Set(float64(ci.Levels))
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
