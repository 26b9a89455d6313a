package api

// CORS: a storefront calls the API from its own pages in the browser. server.cors_origins names
// the origins allowed to; the server answers their preflights (OPTIONS with
// Access-Control-Request-Method) with the methods the path takes, and marks their responses
// readable. Credentials (cookies) are never allowed cross-origin: the UI's key cookie is for the
// UI's own pages, and cross-origin callers send an API key header. So the allowed origin is echoed
// (or "*" when any origin is allowed), and Access-Control-Allow-Credentials is never sent.

import (
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// corsPolicy is server.cors_origins, normalised for comparison.
type corsPolicy struct {
	any     bool            // "*": every origin
	origins map[string]bool // normalised origins
}

func newCORSPolicy(origins []string) corsPolicy {
	p := corsPolicy{origins: map[string]bool{}}
	for _, o := range origins {
		if o == "*" {
			p.any = true
			continue
		}
		p.origins[normalOrigin(o)] = true
	}
	return p
}

// normalOrigin lower-cases scheme and host and adds the scheme's default port, so that
// "https://Shop.example" and "https://shop.example:443" are one origin.
func normalOrigin(o string) string {
	scheme, host, ok := strings.Cut(o, "://")
	if !ok {
		return strings.ToLower(o)
	}
	scheme = strings.ToLower(scheme)
	return scheme + "://" + strings.ToLower(withPort(strings.TrimSuffix(host, "/"), scheme))
}

func (p corsPolicy) enabled() bool { return p.any || len(p.origins) > 0 }

// allows says whether a browser page of origin may call the API.
func (p corsPolicy) allows(origin string) bool {
	if origin == "" || origin == "null" {
		return false
	}
	return p.any || p.origins[normalOrigin(origin)]
}

// allowOrigin is the Access-Control-Allow-Origin value for an allowed origin.
func (p corsPolicy) allowOrigin(origin string) string {
	if p.any {
		return "*"
	}
	return origin
}

// corsAllowHeaders are the request headers a cross-origin page may send.
const corsAllowHeaders = "Authorization, Content-Type, If-Match, X-API-Key, X-Request-ID"

// corsExposeHeaders are the response headers a cross-origin page may read besides the simple ones.
const corsExposeHeaders = "ETag, Retry-After, X-Request-ID, Allow"

// corsMaxAge is how long (seconds) a browser may cache a preflight answer.
const corsMaxAge = "600"

// cors answers OPTIONS (preflights included) for every routed path and marks the responses to
// allowed origins readable. OPTIONS on a path no route takes falls through to 404.
func (s *Server) cors(c *fiber.Ctx) error {
	origin := c.Get(fiber.HeaderOrigin)
	if s.corsPolicy.enabled() {
		c.Vary(fiber.HeaderOrigin)
	}
	if c.Method() != fiber.MethodOptions {
		if s.corsPolicy.allows(origin) {
			c.Set(fiber.HeaderAccessControlAllowOrigin, s.corsPolicy.allowOrigin(origin))
			c.Set(fiber.HeaderAccessControlExposeHeaders, corsExposeHeaders)
		}
		return c.Next()
	}
	allow := s.methods.allowed(c.Path())
	if len(allow) == 0 {
		return c.Next()
	}
	allow = append(allow, fiber.MethodOptions)
	c.Set(fiber.HeaderAllow, strings.Join(allow, ", "))
	if origin == "" || c.Get(fiber.HeaderAccessControlRequestMethod) == "" {
		return c.SendStatus(http.StatusNoContent) // a plain OPTIONS: what the path takes
	}
	if !s.corsPolicy.allows(origin) {
		return errorf(http.StatusForbidden, "cors_rejected",
			"origin %q may not call this API from a browser: add it to server.cors_origins", origin).with("origin", origin)
	}
	c.Set(fiber.HeaderAccessControlAllowOrigin, s.corsPolicy.allowOrigin(origin))
	c.Set(fiber.HeaderAccessControlAllowMethods, strings.Join(allow, ", "))
	c.Set(fiber.HeaderAccessControlAllowHeaders, corsAllowHeaders)
	c.Set(fiber.HeaderAccessControlMaxAge, corsMaxAge)
	return c.SendStatus(http.StatusNoContent)
}
