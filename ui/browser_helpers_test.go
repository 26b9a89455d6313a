package ui_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func envSet(name string) bool { return os.Getenv(name) != "" }

// chromiumPath finds the browser. Without one the browser tests skip on a developer machine and
// fail in CI (CI set), where chromium is installed on purpose.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LOOKALIKE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if envSet("CI") {
		t.Fatal("no chromium found on PATH, and CI is set: the browser tests must run in CI")
	}
	t.Skip("skipping browser test: no chromium found on PATH (set LOOKALIKE_CHROMIUM to use another browser)")
	return ""
}

// repoRoot is the module root: tests run in ui/.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// browser is one headless chromium with one tab, recording the page's console and exceptions.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string

	label string // tells the screenshots of a test's second browser apart

	// viewportOnly makes screenshots show the viewport, not the whole page (phone-sized tours).
	viewportOnly bool

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

var (
	browsersMu sync.Mutex
	browsers   = map[string]int{} // browsers started per test
)

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(acancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx, base: strings.TrimSuffix(base, "/")}
	browsersMu.Lock()
	browsers[t.Name()]++
	if n := browsers[t.Name()]; n > 1 {
		b.label = fmt.Sprintf("-tab%d", n)
	}
	browsersMu.Unlock()
	start, scancel := context.WithTimeout(ctx, 60*time.Second)
	defer scancel()
	if err := chromedp.Do(ctx, b.limit(start)); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	// Registered after cancel, so it runs before the tab closes.
	t.Cleanup(func() {
		if t.Failed() {
			b.screenshot("failed")
			b.mu.Lock()
			for _, m := range b.console {
				t.Logf("console %s (%s:%d)", m.String(), m.URL, m.Line+1)
			}
			b.mu.Unlock()
		}
	})
	return b
}

// limit is a no-op action that fails when ctx has ended, used to bound the browser start.
func (b *browser) limit(ctx context.Context) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(context.Context, *chromedp.Target) error { return ctx.Err() })
}

// do runs actions with a timeout, failing the test with what it was doing.
func (b *browser) do(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// open navigates to a hash route and waits for the app to render its page.
func (b *browser) open(route, readySelector string) {
	b.t.Helper()
	b.do("open "+route, 30*time.Second,
		chromedp.Navigate(b.base+"/"+route),
		chromedp.WaitVisible(chromedp.CSS(readySelector)))
}

// wait polls a JavaScript expression until it is truthy.
func (b *browser) wait(what, expr string, timeout time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf("!!(%s)", expr), chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

// eval evaluates a JavaScript expression and decodes its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf("(document.querySelector(%q) || {}).textContent || ''", sel))
}

func (b *browser) upload(inputSel, file string) {
	b.t.Helper()
	b.do("choose "+filepath.Base(file), 15*time.Second, chromedp.SetUploadFiles(chromedp.CSS(inputSel), []string{file}, chromedp.NodeReady))
}

// screenshot saves a full-page PNG under testdata/screenshots/ at the repository root (git-ignored).
func (b *browser) screenshot(name string) string {
	dir := filepath.Join(repoRoot(b.t), "testdata", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Logf("screenshot: %v", err)
		return ""
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	shot := chromedp.FullScreenshot(100)
	if b.viewportOnly {
		shot = chromedp.CaptureScreenshot()
	}
	buf, err := chromedp.Run(ctx, shot)
	if err != nil {
		b.t.Logf("screenshot: %v", err)
		return ""
	}
	safe := strings.NewReplacer("/", "_", " ", "_").Replace(b.t.Name() + b.label + "-" + name)
	path := filepath.Join(dir, safe+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.t.Logf("screenshot: %v", err)
		return ""
	}
	b.t.Logf("screenshot saved: %s", path)
	return path
}

// consoleProblems returns the console errors and exceptions seen so far, except those whose text
// or source URL contains one of allow (e.g. the browser's own log line for an expected 400 response).
func (b *browser) consoleProblems(allow ...string) []string {
	// Console events arrive asynchronously; give the last ones a moment.
	time.Sleep(300 * time.Millisecond)
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
next:
	for _, m := range b.console {
		if m.Type != chromedp.ConsoleError && !m.IsException() {
			continue
		}
		for _, a := range allow {
			if strings.Contains(m.Text, a) || strings.Contains(m.URL, a) {
				continue next
			}
		}
		out = append(out, fmt.Sprintf("%s (%s:%d)", m.String(), m.URL, m.Line+1))
	}
	return out
}

func (b *browser) noConsoleProblems(allow ...string) {
	b.t.Helper()
	if p := b.consoleProblems(allow...); len(p) > 0 {
		b.t.Errorf("console errors:\n  %s", strings.Join(p, "\n  "))
	}
}
