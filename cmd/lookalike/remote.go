package main

// The catalog commands' way to a running server. bbolt lets one process hold the data file, and
// its lock keeps read-only opens out as well, so while `lookalike serve` runs the CLI cannot open
// the folder at all; with --server URL (and --key) index, search, similar, delete, stats, dupes and
// tag do the same work through the REST API instead, with the Go client (package client: its
// retries on 429 included). This file holds the flags and errors; remotecmds.go the commands.

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/lookalike/lookalike/client"
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

// remote is the API of one server, for one collection.
type remote struct {
	c          *client.Client
	base       string
	collection string
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
	if cf.collection == "" {
		cf.collection = config.Default().Data.DefaultCollection // the server's own default cannot be asked for
	}
	base := strings.TrimRight(u.String(), "/")
	// A bulk load may meet a busy server for a while: wait out its Retry-After, up to 30 s at a time.
	c, err := client.New(base, client.WithAPIKey(key), client.WithRetries(5, 30*time.Second),
		client.WithHTTPClient(&http.Client{Timeout: 5 * time.Minute}), client.WithUserAgent("lookalike-cli/"+version))
	if err != nil {
		return nil, fmt.Errorf("%w: --server: %v", errUsage, err)
	}
	return &remote{c: c, base: base, collection: cf.collection}, nil
}

func lookupEnv(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// explain adds what the operator can do to an error of the API: a key to give, a server to start.
func (r *remote) explain(err error) error {
	var ae *client.Error
	switch {
	case errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden):
		return fmt.Errorf("%w (pass --key or set %s)", err, apiKeyEnv)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no server answers at %s (connection refused: is `lookalike serve` running there?)", r.base)
	}
	return err
}

func isAPIError(err error, status int, code string) bool {
	var ae *client.Error
	return errors.As(err, &ae) && ae.Status == status && (code == "" || ae.Code == code)
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
