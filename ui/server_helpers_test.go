package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lookalike/lookalike/internal/locate"
	"github.com/lookalike/lookalike/internal/testport"
)

// realServer is one `lookalike serve` process shared by the browser tests of this package: the
// model loads once and the catalog is seeded once. TestMain stops it.
type realServer struct {
	URL     string
	UKBench string // folder of the UKBench photos
	dir     string
	cmd     *exec.Cmd
	log     *lockedBuffer
	exited  chan struct{}
	waitErr error
	mock    *httptest.Server
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	serverOnce sync.Once
	shared     *realServer
	sharedErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	os.Exit(code)
}

// seedGroups are the UKBench objects put in the catalog: photos 0..2 of each group are indexed,
// photo 3 is kept back as the query. 36 items fill more than one page of search results (24) and
// of the catalog grid (30), so "Load more" has something to load.
const seedGroups = 12

var seedCategories = []string{"shoes", "bags", "watches", "lamps", "toys", "books"}

// seedID is the item id of UKBench photo n (ukbench00007.jpg is "ukbench00007").
func seedID(n int) string { return fmt.Sprintf("ukbench%05d", n) }

// xssID names the item whose metadata holds markup; the page must show it as text.
const (
	xssID   = "xss-item"
	xssName = `<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">`
)

// startServer builds cmd/lookalike, starts `serve` on a free port with a fresh data folder, waits
// for /readyz and seeds the catalog. It fails the test (not skips) when any of that fails: the
// server is part of the repository.
func startServer(t *testing.T) *realServer {
	t.Helper()
	chromiumPath(t) // skip before the expensive build when there is no browser
	serverOnce.Do(func() { shared, sharedErr = launch() })
	if sharedErr != nil {
		if shared != nil && shared.log != nil {
			t.Logf("server log:\n%s", tail(shared.log.String(), 4000))
		}
		t.Fatalf("start lookalike serve: %v", sharedErr)
	}
	select {
	case <-shared.exited:
		t.Fatalf("lookalike serve exited early (%v); log:\n%s", shared.waitErr, tail(shared.log.String(), 4000))
	default:
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log (tail):\n%s", tail(shared.log.String(), 3000))
		}
	})
	return shared
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func launch() (*realServer, error) { return launchServe() }

// launchServe starts a seeded `lookalike serve` with env added to its environment.
func launchServe(env ...string) (*realServer, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	ukb, err := locate.Dir("ukbench", locate.DatasetDirs())
	if err != nil {
		return nil, fmt.Errorf("find the UKBench photos: %w", err)
	}
	dir, err := os.MkdirTemp("", "lookalike-ui-test-")
	if err != nil {
		return nil, err
	}
	s := &realServer{UKBench: ukb, dir: dir, log: &lockedBuffer{}, exited: make(chan struct{})}
	if os.Getenv("LOOKALIKE_UI_SERVER") == "mock" {
		// Development only: the same tests against the mock API, before the server exists.
		s.mock = newMockAPI(false)
		s.URL = s.mock.URL
		return s, s.seed()
	}
	bin := filepath.Join(dir, "lookalike")
	build := exec.Command("go", "build", "-o", bin, "./cmd/lookalike")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("go build ./cmd/lookalike: %v\n%s", err, out)
	}
	port, err := testport.Free()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s.URL = "http://" + addr
	s.cmd = exec.Command(bin, "serve", "--addr", addr, "--data", filepath.Join(dir, "data"))
	// Run from the repository root so the locator finds .cache/onnxruntime and ../shared/models.
	s.cmd.Dir = root
	s.cmd.Env = append(append(os.Environ(), "LOOKALIKE_DEMO=off", "LOOKALIKE_DEMO_MODE=off"), env...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(3 * time.Minute); err != nil {
		s.stop()
		return s, err
	}
	if err := s.seed(); err != nil {
		s.stop()
		return s, fmt.Errorf("seed the catalog: %w", err)
	}
	return s, nil
}

func (s *realServer) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("lookalike serve exited before it was ready: %v", s.waitErr)
		default:
		}
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("/readyz not ready after %s", limit)
}

func (s *realServer) stop() {
	if s.mock != nil {
		s.mock.Close()
	}
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	os.RemoveAll(s.dir)
}

func (s *realServer) seed() error {
	for g := range seedGroups {
		for p := range 3 {
			n := 4*g + p
			meta := map[string]any{
				"name":     fmt.Sprintf("Object %d, photo %d", g, p),
				"category": seedCategories[g%len(seedCategories)],
				"brand":    []string{"acme", "globex"}[g%2],
				"price":    10 + 15*g + p,
			}
			if err := s.addItem(filepath.Join(s.UKBench, seedID(n)+".jpg"), seedID(n), meta); err != nil {
				return err
			}
		}
	}
	return s.addItem(filepath.Join(s.UKBench, seedID(4*seedGroups+1)+".jpg"), xssID,
		map[string]any{"name": xssName, "category": "<b>bold</b>", "brand": "x\" onmouseover=\"window.__xss=3", "price": 1})
}

// apiError is the error body every endpoint sends.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (s *realServer) addItem(path, id string, meta map[string]any) error {
	resp, body, err := s.postImage("/v1/collections/default/items", path, map[string]string{"id": id, "metadata": mustJSON(meta)})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("add %s: HTTP %d: %s", id, resp.StatusCode, body)
	}
	return nil
}

// postImage sends a multipart form with the file as "image" plus the given fields.
func (s *realServer) postImage(route, path string, fields map[string]string) (*http.Response, []byte, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	part, err := w.CreateFormFile("image", filepath.Base(path))
	if err != nil {
		return nil, nil, err
	}
	if _, err := io.Copy(part, f); err != nil {
		return nil, nil, err
	}
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			return nil, nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+route, &buf)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func (s *realServer) getJSON(t *testing.T, route string, v any) int {
	t.Helper()
	resp, err := http.Get(s.URL + route)
	if err != nil {
		t.Fatalf("GET %s: %v", route, err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("GET %s: decode: %v", route, err)
		}
	}
	return resp.StatusCode
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func (s *realServer) photo(n int) string {
	return filepath.Join(s.UKBench, seedID(n)+".jpg")
}

// groupIDs lists the indexed items of UKBench objects gs.
func groupIDs(gs ...int) []string {
	var ids []string
	for _, g := range gs {
		ids = append(ids, seedID(4*g), seedID(4*g+1), seedID(4*g+2))
	}
	return ids
}

func quote(s string) string { return mustJSON(s) }

// createCollection creates an empty collection through the API.
func (s *realServer) createCollection(name string) error {
	resp, err := http.Post(s.URL+"/v1/collections", "application/json", bytes.NewBufferString(mustJSON(map[string]string{"name": name})))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("create collection %s: HTTP %d", name, resp.StatusCode)
	}
	return nil
}
