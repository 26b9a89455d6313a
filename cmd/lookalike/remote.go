package main

// The catalog commands' way to a running server. bbolt lets one process hold the data file, and
// its lock keeps read-only opens out as well, so while `lookalike serve` runs the CLI cannot open
// the folder at all; with --server URL (and --key) index, search, similar, delete, stats, dupes and
// tag do the same work through the REST API instead. This file holds the HTTP side: requests,
// the API's error shape, retries on 429; remotecmds.go holds the commands.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// remoteFlags are --server and --key, shared by every catalog command.
type remoteFlags struct {
	server, key string
	// filter is --filter as typed: the server parses it (search and similar set it).
	filter string
}

func (f *remoteFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.server, "server", "", "work through a running server's API at this URL (e.g. http://localhost:8080) instead of a data directory")
	fs.StringVar(&f.key, "key", "", "API key for --server (default $LOOKALIKE_API_KEY)")
}

// apiKeyEnv names the environment variable --key falls back to: a key on the command line is
// visible to every user of the machine (ps) and lands in shell history.
const apiKeyEnv = "LOOKALIKE_API_KEY"

// remote is a client of one server's API for one collection.
type remote struct {
	base       string // scheme://host[:port][/prefix], no trailing slash
	key        string
	collection string
	http       *http.Client
	// retries is how often a request refused with 429 (or 503 with Retry-After) is sent again.
	retries int
}

// connect checks the flags of a --server command and returns its client. --data and --server
// exclude each other: a data directory is exactly what the server holds.
func (cf *catalogFlags) connect(env *cliEnv) (*remote, error) {
	if cf.data != "" {
		return nil, fmt.Errorf("%w: --data and --server exclude each other (the server has its own data directory)", errUsage)
	}
	u, err := url.Parse(cf.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: --server %q: want the server's base URL, like http://localhost:8080", errUsage, cf.server)
	}
	key := cf.key
	if key == "" {
		key = lookupEnv(env.environ, apiKeyEnv)
	}
	col := cf.collection
	if col == "" {
		col = config.Default().Data.DefaultCollection // the server's default cannot be asked for
	}
	cf.collection = col
	return &remote{base: strings.TrimRight(u.String(), "/"), key: key, collection: col,
		http: &http.Client{Timeout: 5 * time.Minute}, retries: 5}, nil
}

func lookupEnv(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// apiError is the API's error body, {"error": {"code", "message", "details"}}, with its status.
type apiError struct {
	Status  int            `json:"-"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

// Error reads as the message first, then where it came from: "no item "x" in collection "default"
// (HTTP 404 item_not_found)".
func (e *apiError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.Status))
	}
	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
		msg += " (pass --key or set " + apiKeyEnv + ")"
	}
	return fmt.Sprintf("%s (HTTP %d %s)", msg, e.Status, e.Code)
}

func isAPIError(err error, status int, code string) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status && (code == "" || ae.Code == code)
}

// colPath is the API path of the collection, plus more path segments (already escaped).
func (r *remote) colPath(more ...string) string {
	return "/v1/collections/" + url.PathEscape(r.collection) + strings.Join(more, "")
}

func itemPath(id string) string { return "/items/" + url.PathEscape(id) }

// call sends one request and decodes a 2xx JSON answer into out (nil: discarded). A JSON body is
// given as any value (marshalled) or as ready bytes with their content type. 429, and 503 with
// Retry-After, are retried after the server's Retry-After (all of Lookalike's writes are
// idempotent: the same photo and metadata again is "unchanged").
func (r *remote) call(ctx context.Context, method, path string, query url.Values, body any, out any) error {
	var data []byte
	contentType := ""
	switch b := body.(type) {
	case nil:
	case ndjson:
		data, contentType = b, "application/x-ndjson"
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			return err
		}
		contentType = "application/json"
	}
	u := r.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	for attempt := 0; ; attempt++ {
		wait, err := r.once(ctx, method, u, contentType, data, out)
		if wait <= 0 || attempt >= r.retries {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// ndjson is a ready request body of JSON lines.
type ndjson []byte

// maxRetryWait bounds one Retry-After wait.
const maxRetryWait = 30 * time.Second

// once sends the request once; wait > 0 means "refused for now, retry after wait".
func (r *remote) once(ctx context.Context, method, u, contentType string, data []byte, out any) (wait time.Duration, err error) {
	var rd io.Reader
	if data != nil {
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if r.key != "" {
		req.Header.Set("Authorization", "Bearer "+r.key)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return 0, fmt.Errorf("no server answers at %s (connection refused: is `lookalike serve` running there?)", r.base)
		}
		return 0, fmt.Errorf("%s %s: %w", method, r.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return 0, fmt.Errorf("%s %s: reading the answer: %w", method, u, err)
	}
	if resp.StatusCode/100 == 2 {
		if out == nil {
			return 0, nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return 0, fmt.Errorf("%s %s: the answer is not the JSON expected (is %s a Lookalike server?): %w", method, u, r.base, err)
		}
		return 0, nil
	}
	ae := decodeAPIError(resp.StatusCode, raw)
	if ra, convErr := strconv.Atoi(resp.Header.Get("Retry-After")); convErr == nil &&
		(resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		return min(max(time.Duration(ra)*time.Second, 100*time.Millisecond), maxRetryWait), ae
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return time.Second, ae
	}
	return 0, ae
}

// decodeAPIError reads the API's error body; anything else (a proxy's HTML page) becomes the
// first line of its text.
func decodeAPIError(status int, raw []byte) *apiError {
	var body struct {
		Error *apiError `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error != nil && body.Error.Code != "" {
		body.Error.Status = status
		return body.Error
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(raw)), "\n")
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	return &apiError{Status: status, Code: "http_error", Message: line}
}

// dataDirError says why a data directory could not be opened, in the operator's terms: another
// process holds it (point at --server), this user may not write it (say who and what to do), or
// the store's own reason.
func dataDirError(cfg config.Config, err error) error {
	switch {
	case errors.Is(err, index.ErrLocked):
		return fmt.Errorf("data directory %q is held by another process, most likely a running `lookalike serve` "+
			"(the store admits one process at a time, readers too): go through it with --server URL and --key "+
			"(%s by server.addr): %w", cfg.Data.Dir, serverURL(cfg.Server.Addr), err)
	case errors.Is(err, index.ErrReadOnly) && isPermission(err):
		return fmt.Errorf("data directory %q cannot be written or read by this user (uid %d): make it this user's (chown), "+
			"or pick another with --data: %w", cfg.Data.Dir, os.Getuid(), err)
	}
	return fmt.Errorf("open data directory %q: %w", cfg.Data.Dir, err)
}

func isPermission(err error) bool {
	return errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)
}

// serverURL is the URL a client on this machine reaches a server listening on addr at (":8080"
// → http://localhost:8080).
func serverURL(addr string) string {
	return "http://" + localAddr(addr)
}
