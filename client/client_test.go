package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lookalike/lookalike/client"
)

// The retry policy, against a stand-in server that refuses a set number of times. (The client
// against the real server: api/client_test.go.)
func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		retryAfter  string
		refusals    int32
		opts        []client.Option
		wantCalls   int32
		wantStatus  int // 0: success
		maxDuration time.Duration
	}{
		{"429 with Retry-After, then success", 429, "1", 1, nil, 2, 0, 3 * time.Second},
		{"429 without Retry-After: backoff", 429, "", 2, nil, 3, 0, 3 * time.Second},
		{"503 with Retry-After", 503, "0", 1, nil, 2, 0, 3 * time.Second},
		{"503 without Retry-After is not retried", 503, "", 1, nil, 1, 503, time.Second},
		{"a 400 is never retried", 400, "", 1, nil, 1, 400, time.Second},
		{"retries run out", 429, "", 5, []client.Option{client.WithRetries(2, time.Minute)}, 3, 429, 3 * time.Second},
		{"a wait longer than allowed is not waited", 429, "120", 1, []client.Option{client.WithRetries(3, 10*time.Second)}, 1, 429, time.Second},
		{"retries off", 429, "1", 1, []client.Option{client.WithRetries(0, 0)}, 1, 429, time.Second},
		{"an HTTP date", 429, time.Now().Add(-time.Second).UTC().Format(http.TimeFormat), 1, nil, 2, 0, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) <= tc.refusals {
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(tc.status)
					w.Write([]byte(`{"error":{"code":"overloaded","message":"busy","details":{"x":1}}}`))
					return
				}
				w.Write([]byte(`{"count":7}`))
			}))
			defer srv.Close()
			c, err := client.New(srv.URL, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			n, err := c.CountItems(context.Background(), "default", nil)
			if d := time.Since(start); d > tc.maxDuration {
				t.Errorf("took %v", d)
			}
			if calls.Load() != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls.Load(), tc.wantCalls)
			}
			var apiErr *client.Error
			switch {
			case tc.wantStatus == 0 && (err != nil || n != 7):
				t.Errorf("CountItems = %d, %v", n, err)
			case tc.wantStatus != 0 && (!errors.As(err, &apiErr) || apiErr.Status != tc.wantStatus || apiErr.Code != "overloaded" || apiErr.Details["x"] != 1.0):
				t.Errorf("error %#v, want a *client.Error with status %d", err, tc.wantStatus)
			}
		})
	}
}

// A retry wait ends when the context does.
func TestRetryWaitFollowsContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(429)
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.CountItems(ctx, "default", nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://x", "http://"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	if _, err := client.New("https://search.example/lookalike/"); err != nil {
		t.Errorf("a path prefix: %v", err)
	}
}

// A non-JSON failure (a proxy's HTML page) is still an *Error with the status.
func TestNonJSONError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL)
	_, err := c.Collections(context.Background())
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 502 || apiErr.Code != "http_502" {
		t.Fatalf("%#v", err)
	}
}
