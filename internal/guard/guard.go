// Package guard runs long-lived background loops so that a panic in one is logged and survived
// instead of killing the process (issue 11: every background goroutine runs under a guard).
//
// A loop is a func(ctx) that runs until ctx is done. Go starts it, recovers a panic, logs it with
// its stack, waits a backoff and starts the loop again; a loop that returns normally, or whose ctx is
// done, is not restarted. The caller owns the shutdown: cancel ctx, then wait on the WaitGroup.
//
// # Caveats
//
//   - The restarted loop is a fresh call: state kept in its local variables is lost, and state it
//     shares must be consistent at any point where it can panic (release locks with defer).
//   - A panic is recovered only on the loop's own goroutine; goroutines it starts need their own guard.
package guard

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Backoff bounds: the wait before a restart starts at minBackoff and doubles with every panic, up to
// maxBackoff; a run that lasted maxBackoff or more resets it, so a rare panic restarts at once while
// a loop that panics on every start does not spin.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = time.Minute
)

// Go runs fn(ctx) on a new goroutine counted in wg (wg.Done when it has stopped for good). A panic in
// fn is logged at error level under name, with its stack, and fn is called again after a backoff; Go
// stops when fn returns or ctx is done. log may be nil (discard).
func Go(ctx context.Context, wg *sync.WaitGroup, log *slog.Logger, name string, fn func(context.Context)) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		backoff := minBackoff
		for ctx.Err() == nil {
			start := time.Now()
			val, stack, panicked := run(ctx, fn)
			if !panicked {
				return
			}
			if time.Since(start) >= maxBackoff {
				backoff = minBackoff
			}
			log.Error("background loop panicked; restarting", "loop", name, "panic", fmt.Sprint(val),
				"restart_in", backoff, "stack", string(stack))
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, maxBackoff)
		}
	}()
}

// run calls fn once and reports a recovered panic with the stack where it happened.
func run(ctx context.Context, fn func(context.Context)) (val any, stack []byte, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			val, stack, panicked = r, debug.Stack(), true
		}
	}()
	fn(ctx)
	return nil, nil, false
}
