package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one Lookalike server. It is safe for concurrent use.
type Client struct {
	base         *url.URL
	http         *http.Client
	key          string
	maxRetries   int
	maxRetryWait time.Duration
	userAgent    string
}

// Option configures a Client.
type Option func(*Client)

// Defaults of the options.
const (
	DefaultMaxRetries   = 3
	DefaultMaxRetryWait = 10 * time.Second
	DefaultTimeout      = 60 * time.Second
)

// WithHTTPClient uses hc for every request (default: an http.Client with DefaultTimeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithAPIKey sends key as "Authorization: Bearer KEY" with every request.
func WithAPIKey(key string) Option { return func(c *Client) { c.key = key } }

// WithRetries sets how often a request refused for load (429, 503) is sent again (0: never), and
// the longest wait the client accepts before one: a server asking for more gets its error back.
func WithRetries(maxRetries int, maxWait time.Duration) Option {
	return func(c *Client) { c.maxRetries, c.maxRetryWait = max(maxRetries, 0), maxWait }
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the server at baseURL (scheme, host and port, e.g.
// "http://localhost:8080"; a path prefix is kept, for a server behind a proxy).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("client: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q must be http(s)://host[:port]", baseURL)
	}
	c := &Client{base: u, http: &http.Client{Timeout: DefaultTimeout}, maxRetries: DefaultMaxRetries,
		maxRetryWait: DefaultMaxRetryWait, userAgent: "lookalike-go-client"}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Error is an answer of the server that is not a success: its HTTP status and the API's error
// body ({"error": {"code", "message", "details"}}).
type Error struct {
	Status  int            `json:"-"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
	// RetryAfter is the wait the server asked for (Retry-After), 0 when it named none.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("lookalike: %d %s: %s", e.Status, e.Code, e.Message)
}

// request is one call: its body is kept as bytes so that a retry can send it again.
type request struct {
	method, path string
	query        url.Values
	body         []byte
	contentType  string
	header       http.Header
}

// endpoint is the URL of path (escaped: ids may hold '/', sent as %2F) with query.
func (c *Client) endpoint(path string, query url.Values) string {
	u := *c.base
	u.RawPath = c.base.EscapedPath() + path
	u.Path, _ = url.PathUnescape(u.RawPath) // path was escaped by collectionPath and itemPath
	u.RawQuery = query.Encode()
	return u.String()
}

// do sends r, retrying refusals for load, and decodes a success into out (*[]byte: the raw body;
// nil: discarded). It returns the success's headers.
func (c *Client) do(ctx context.Context, r request, out any) (http.Header, error) {
	for attempt := 0; ; attempt++ {
		resp, err := c.send(ctx, r)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 400 {
			defer resp.Body.Close()
			return resp.Header, decode(resp, out)
		}
		apiErr := readError(resp)
		// A 503 with Retry-After is the server's "busy, come back": one without it (shutting down,
		// storage failing) is not helped by asking again at once.
		retryable := resp.StatusCode == http.StatusTooManyRequests ||
			resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != ""
		if !retryable || attempt >= c.maxRetries {
			return nil, apiErr
		}
		wait := apiErr.RetryAfter
		if wait == 0 {
			wait = 200 * time.Millisecond << attempt
		}
		if wait > c.maxRetryWait {
			return nil, apiErr
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("lookalike: %w while waiting to retry after %v", ctx.Err(), apiErr)
		case <-t.C:
		}
	}
}

func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.endpoint(r.path, r.query), body)
	if err != nil {
		return nil, fmt.Errorf("lookalike: %w", err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("lookalike: %s %s: %w", r.method, r.path, err)
	}
	return resp, nil
}

func decode(resp *http.Response, out any) error {
	switch o := out.(type) {
	case nil:
		_, err := io.Copy(io.Discard, resp.Body)
		return err
	case *[]byte:
		b, err := io.ReadAll(resp.Body)
		*o = b
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("lookalike: decode the %d answer: %w", resp.StatusCode, err)
	}
	return nil
}

// readError turns a failed answer into an *Error, whatever its body.
func readError(resp *http.Response) *Error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body struct {
		Error *Error `json:"error"`
	}
	e := &Error{Code: "http_" + strconv.Itoa(resp.StatusCode), Message: strings.TrimSpace(string(b))}
	if json.Unmarshal(b, &body) == nil && body.Error != nil {
		e = body.Error
	}
	e.Status = resp.StatusCode
	e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"))
	return e
}

// retryAfter reads Retry-After: seconds, or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// jsonRequest is a request with a JSON body.
func jsonRequest(method, path string, v any) (request, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return request{}, fmt.Errorf("lookalike: encode the request: %w", err)
	}
	return request{method: method, path: path, body: b, contentType: "application/json"}, nil
}

// collectionPath is /v1/collections/{name} plus rest (already escaped).
func collectionPath(name, rest string) string {
	return "/v1/collections/" + url.PathEscape(name) + rest
}

func itemPath(collection, id, rest string) string {
	return collectionPath(collection, "/items/"+url.PathEscape(id)+rest)
}

// errNoItems is returned by the batch methods for an empty batch, before any request.
var errNoItems = errors.New("lookalike: the batch is empty")
