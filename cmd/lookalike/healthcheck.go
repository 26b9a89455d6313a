package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runHealthcheck asks a server on this machine whether it is ready (GET /readyz): exit 0 when it
// answers 200, 1 otherwise. It is the container image's HEALTHCHECK, which has no curl: the address
// comes from the same config and environment as serve's (server.addr), so both agree.
func runHealthcheck(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "healthcheck")
	target := fs.String("url", "", "URL to probe (default http://localhost:PORT/readyz, PORT from server.addr)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
	}
	u := *target
	if u == "" {
		cfg, err := env.loadConfig()
		if err != nil {
			return err
		}
		u = serverURL(cfg.Server.Addr) + "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%w: --url %q: %v", errUsage, u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(env.stdout, "%s: ready\n", u)
	return nil
}
