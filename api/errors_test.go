package api

// Failures inside the server (issue 11, issue 12): a handler panic is a 500 carrying the request
// id, never a dead process; deadlines and cancellations are 504/503, never "500 internal"; storage
// errors reach the client without the server's file paths.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// scriptedEmbedder answers each Embed call with what fn says; a nil error embeds every image as a
// fixed unit vector.
type scriptedEmbedder struct {
	calls  atomic.Int64
	images atomic.Int64
	fn     func(ctx context.Context, call int64) error
}

func (e *scriptedEmbedder) Embed(ctx context.Context, imgs []embed.Image) ([]embed.Embedding, error) {
	if e.fn != nil {
		if err := e.fn(ctx, e.calls.Add(1)); err != nil {
			return nil, err
		}
	}
	out := make([]embed.Embedding, len(imgs))
	for i := range out {
		// Distinct vectors, so that the index has a real graph to build.
		n := float32(e.images.Add(1))
		v := []float32{1, float32(int(n) % 13), float32(int(n) % 7), float32(int(n) % 5)}
		norm := float32(math.Sqrt(float64(v[0]*v[0] + v[1]*v[1] + v[2]*v[2] + v[3]*v[3])))
		for j := range v {
			v[j] /= norm
		}
		out[i].Vector = v
	}
	return out, nil
}

func (*scriptedEmbedder) Info() embed.Info {
	return embed.Info{ModelID: "scripted", Fingerprint: "scripted-0000000000", Dims: 4}
}

// TestRecoverPanic: a panic in a handler (here: inside the embedder, as a cgo binding might) is a
// 500 whose body carries the request id, the log has the stack under the same id, the inference
// slot is given back, and the server keeps serving.
func TestRecoverPanic(t *testing.T) {
	eng := &scriptedEmbedder{fn: func(_ context.Context, call int64) error {
		if call == 1 {
			panic("tensor shape mismatch")
		}
		return nil
	}}
	logs := &syncLog{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ts := startTestServer(t, eng, log, func(c *config.Config) {
		c.Server.MaxInflightEmbeds = 1
		c.Server.MaxQueuedEmbeds = 0
	})
	jpg := reencode(t, photo(t, ukName(1)), 0.25, 70)
	r, _ := ts.searchImage(t, jpg)
	var e struct{ Error Error }
	r.json(t, &e)
	rid := r.header.Get("X-Request-ID")
	if r.status != 500 || e.Error.Code != "internal" || rid == "" || e.Error.Details["request_id"] != rid {
		t.Fatalf("panic: %d %s (X-Request-ID %q), want 500 internal with the request id", r.status, r.body, rid)
	}
	if strings.Contains(string(r.body), "tensor shape") {
		t.Errorf("the panic value reached the client: %s", r.body)
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "panic") && strings.Contains(l, rid) {
			line = l
		}
	}
	if !strings.Contains(line, "tensor shape mismatch") || !strings.Contains(line, "goroutine") || !strings.Contains(line, "errors_test.go") {
		t.Errorf("no log line with the panic, its stack and the request id %s:\n%s", rid, logs.String())
	}
	// The one inference slot came back: the next image search is answered.
	if r, _ := ts.searchImage(t, jpg); r.status != 200 {
		t.Errorf("search after the panic: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", ts.url+"/healthz", "", nil); r.status != 200 {
		t.Errorf("healthz after the panic: %d", r.status)
	}
}

// TestDeadlinesAndCancellation: a request that runs out of time is 504 timeout, one whose context
// was cancelled is 503 cancelled, whether the error comes back bare or wrapped, and whether the
// deadline is the server's own (server.write_timeout bounds each request's work).
func TestDeadlinesAndCancellation(t *testing.T) {
	eng := &scriptedEmbedder{}
	ts := startTestServer(t, eng, nil, func(c *config.Config) { c.Server.WriteTimeout = 400 * time.Millisecond })
	jpg := reencode(t, photo(t, ukName(1)), 0.25, 70)
	for _, tc := range []struct {
		name   string
		fn     func(ctx context.Context, _ int64) error
		status int
		code   string
	}{
		{"deadline", func(context.Context, int64) error { return context.DeadlineExceeded }, 504, "timeout"},
		{"wrapped deadline", func(context.Context, int64) error { return fmt.Errorf("embed: run: %w", context.DeadlineExceeded) }, 504, "timeout"},
		{"cancelled", func(context.Context, int64) error { return fmt.Errorf("embed: %w", context.Canceled) }, 503, "cancelled"},
		{"server deadline", func(ctx context.Context, _ int64) error { <-ctx.Done(); return ctx.Err() }, 504, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng.fn = tc.fn
			r, _ := ts.searchImage(t, jpg)
			if r.status != tc.status || r.errorCode(t) != tc.code {
				t.Errorf("search: %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			body, ct := multipartBody(t, part{"image", "x.jpg", jpg}, part{"id", "", []byte("x")})
			if r := do(t, "POST", ts.url+"/v1/collections/default/items", ct, body); r.status != tc.status || r.errorCode(t) != tc.code {
				t.Errorf("add: %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
}

// TestStorageErrorsHidePaths: errors from the store carry the server's file paths; the client gets
// the code and the reason (no space left, read-only) without them, the log keeps the whole error
// with the request id.
func TestStorageErrorsHidePaths(t *testing.T) {
	const secret = "/srv/secret-data-dir/lookalike.db"
	pathErr := func(errno syscall.Errno) error {
		return &os.PathError{Op: "write", Path: secret, Err: errno}
	}
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
		reason string
	}{
		{"disk full", fmt.Errorf("%w: commit: %w", index.ErrStorage, pathErr(syscall.ENOSPC)), 503, "storage_unavailable", "no space left on device"},
		{"io error", fmt.Errorf("%w: open %s: %w", index.ErrStorage, secret, pathErr(syscall.EIO)), 503, "storage_unavailable", "input/output error"},
		{"read-only", fmt.Errorf("%w: open %s: %w", index.ErrReadOnly, secret, pathErr(syscall.EROFS)), 503, "read_only", "read-only"},
		{"flattened", fmt.Errorf("%w: grow: %s", index.ErrStorage, fmt.Errorf("file resize error: %s", pathErr(syscall.ENOSPC))), 503, "storage_unavailable", "no space left on device"},
		{"bare path error", fmt.Errorf("load: %w", pathErr(syscall.EACCES)), 500, "internal", ""},
		{"damaged file", fmt.Errorf("%w: %s is damaged (restore a backup): bad meta page", index.ErrStorage, secret), 503, "storage_unavailable", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := classify(tc.err)
			if e.Status != tc.status || e.Code != tc.code {
				t.Errorf("classify: %d %s, want %d %s", e.Status, e.Code, tc.status, tc.code)
			}
			if strings.Contains(e.Message, "secret-data-dir") || strings.Contains(fmt.Sprint(e.Details), "secret-data-dir") {
				t.Errorf("the message names the server's path: %q %v", e.Message, e.Details)
			}
			if !strings.Contains(e.Message, tc.reason) {
				t.Errorf("message %q does not give the reason %q", e.Message, tc.reason)
			}

			// Through the error handler: the response hides the path, the log keeps it.
			logs := &syncLog{}
			s := &Server{log: slog.New(slog.NewTextHandler(logs, nil)), metrics: newMetrics(prometheus.NewRegistry()), stats: newStatsRecorder(time.Minute)}
			app := fiber.New()
			c := app.AcquireCtx(&fasthttp.RequestCtx{})
			defer app.ReleaseCtx(c)
			c.Locals("requestid", "rid-42")
			if err := s.errorHandler(c, tc.err); err != nil {
				t.Fatal(err)
			}
			if body := string(c.Response().Body()); strings.Contains(body, "secret-data-dir") {
				t.Errorf("response names the server's path: %s", body)
			}
			if l := logs.String(); !strings.Contains(l, secret) || !strings.Contains(l, "rid-42") {
				t.Errorf("the log lacks the path or the request id: %s", l)
			}
		})
	}
	if e := classify(errors.New("x")); e.Code != "internal" {
		t.Errorf("unknown error: %s", e.Code)
	}
}
