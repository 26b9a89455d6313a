package guard

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// syncBuffer is a log sink the loop goroutine and the test can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitDone fails the test when wg is not done within d.
func waitDone(t *testing.T, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatal("the guarded loop did not stop")
	}
}

func TestGo(t *testing.T) {
	tests := []struct {
		name string
		// panics is how many starts panic before the loop settles; -1: every start panics.
		panics int
		// returns: the settled loop returns at once instead of running until ctx is done.
		returns    bool
		wantStarts int32 // starts observed before cancel (at least)
	}{
		{"panics twice, then runs until cancelled", 2, false, 3},
		{"panics once, then returns: not restarted", 1, true, 2},
		{"returns at once: not restarted", 0, true, 1},
		{"panics on every start: cancel stops the backoff", -1, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf syncBuffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			var starts atomic.Int32
			settled := make(chan struct{})
			Go(ctx, &wg, log, "test.loop", func(ctx context.Context) {
				n := starts.Add(1)
				if tt.panics < 0 || int(n) <= tt.panics {
					panic("boom " + string(rune('0'+n)))
				}
				close(settled)
				if tt.returns {
					return
				}
				<-ctx.Done()
			})
			if tt.panics >= 0 {
				select {
				case <-settled:
				case <-time.After(10 * time.Second):
					t.Fatalf("loop never settled after %d starts", starts.Load())
				}
			} else {
				deadline := time.Now().Add(10 * time.Second)
				for starts.Load() < tt.wantStarts && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
			}
			if tt.returns {
				waitDone(t, &wg, 5*time.Second) // stopped on its own, without cancel
			}
			cancel()
			waitDone(t, &wg, 5*time.Second)
			got := starts.Load()
			if tt.panics >= 0 && got != tt.wantStarts || tt.panics < 0 && got < tt.wantStarts {
				t.Fatalf("%d starts, want %d", got, tt.wantStarts)
			}
			logs := buf.String()
			wantPanics := tt.panics
			if tt.panics < 0 {
				wantPanics = int(got)
			}
			if n := strings.Count(logs, "background loop panicked"); n != wantPanics {
				t.Fatalf("%d panic log lines, want %d:\n%s", n, wantPanics, logs)
			}
			if wantPanics > 0 {
				for _, want := range []string{"loop=test.loop", "panic=\"boom 1\"", "guard_test.go"} {
					if !strings.Contains(logs, want) {
						t.Errorf("panic log lacks %q (the stack names the panicking file):\n%s", want, logs)
					}
				}
			}
		})
	}
}

// TestGoCancelledBeforeStart: a loop whose context is already done never runs.
func TestGoCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	ran := false
	Go(ctx, &wg, nil, "never", func(context.Context) { ran = true })
	waitDone(t, &wg, 5*time.Second)
	if ran {
		t.Fatal("loop ran with a done context")
	}
}
