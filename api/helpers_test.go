package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/image/draw"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/internal/locate"
)

// One engine serves every test of the package: creating ONNX Runtime sessions costs real time.
var (
	engineOnce sync.Once
	sharedEng  *embed.Engine
	engineErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedEng != nil {
		sharedEng.Close()
	}
	os.Exit(code)
}

func testEngine(t testing.TB) *embed.Engine {
	t.Helper()
	engineOnce.Do(func() {
		sharedEng, engineErr = newTestEngine(embed.Options{Device: "cpu"})
	})
	if engineErr != nil {
		if errors.Is(engineErr, locate.ErrNotFound) && os.Getenv("CI") == "" {
			t.Skipf("model not installed (run scripts/setup): %v", engineErr)
		}
		t.Fatalf("embed.New: %v", engineErr)
	}
	return sharedEng
}

// newTestEngine starts an engine on o.Model (the default model when zero) with its files resolved
// as cmd/lookalike resolves them: embed itself searches no paths.
func newTestEngine(o embed.Options) (*embed.Engine, error) {
	m := cmp.Or(o.Model, spec.DefaultModel())
	var err error
	if o.ModelPath, o.LabelsPath, err = locate.ModelFiles(m); err != nil {
		return nil, err
	}
	o.RuntimeLibrary = locate.RuntimeLibrary("")
	return embed.New(context.Background(), o)
}

type testServer struct {
	*Server
	url string
	db  *index.DB
	dir string
}

// newTestServer starts a real server on a loopback port with a fresh data directory.
func newTestServer(t testing.TB, mutate func(*config.Config)) *testServer {
	t.Helper()
	return startTestServer(t, testEngine(t), nil, mutate)
}

// startTestServer is the one way tests start a server: eng and log (nil = discard) vary per test.
func startTestServer(t testing.TB, eng Embedder, log *slog.Logger, mutate func(*config.Config)) *testServer {
	t.Helper()
	ts, _ := serveTest(t, eng, log, mutate, nil)
	return ts
}

// serveTest is startTestServer with the listener wrapped by wrap (nil: as is); stop ends Serve and
// returns its error (the test's cleanup calls it too, then closes the store).
func serveTest(t testing.TB, eng Embedder, log *slog.Logger, mutate func(*config.Config), wrap func(net.Listener) net.Listener) (ts *testServer, stop func() error) {
	t.Helper()
	cfg := config.Default()
	cfg.Data.Dir = t.TempDir()
	cfg.Limits.MaxBodyBytes = 4 << 20
	cfg.Quality.RecallSampleRate = 0
	if mutate != nil {
		mutate(&cfg)
	}
	db, err := index.Open(cfg.Data.Dir, &index.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	info := eng.Info()
	if _, err := db.CreateCollection("default", index.CollectionConfig{Fingerprint: info.Fingerprint, Dims: info.Dims}); err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, eng, db, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := ln
	if wrap != nil {
		served = wrap(ln)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, served) }()
	srv.SetReady(true)
	var once sync.Once
	var serveErr error
	stop = func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("close db: %v", err)
		}
	})
	return &testServer{Server: srv, url: "http://" + ln.Addr().String(), db: db, dir: cfg.Data.Dir}, stop
}

func ukbenchDir(t testing.TB) string {
	t.Helper()
	d, err := locate.Dir("ukbench", locate.DatasetDirs())
	if err != nil {
		t.Skipf("UKBench photos not found: %v", err)
	}
	return d
}

func photo(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ukbenchDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reencode returns a copy scaled by scale and re-encoded as JPEG at quality q.
func reencode(t testing.TB, data []byte, scale float64, q int) []byte {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, int(float64(b.Dx())*scale), int(float64(b.Dy())*scale)))
	draw.CatmullRom.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type part struct {
	field, filename string
	data            []byte
}

func multipartBody(t testing.TB, parts ...part) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		if p.filename != "" {
			fw, err := w.CreateFormFile(p.field, p.filename)
			if err != nil {
				t.Fatal(err)
			}
			fw.Write(p.data)
		} else if err := w.WriteField(p.field, string(p.data)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return &buf, w.FormDataContentType()
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %d is not JSON: %v\n%s", r.status, err, r.body)
	}
}

// errorCode returns the code of the API's error shape, failing the test when the shape is wrong.
func (r response) errorCode(t testing.TB) string {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	r.json(t, &e)
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("error response without code/message: %s", r.body)
	}
	return e.Error.Code
}

func do(t testing.TB, method, url, contentType string, body io.Reader, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// addPhoto uploads one UKBench photo with metadata and fails the test unless it is stored.
func (ts *testServer) addPhoto(t testing.TB, name string, meta string) {
	t.Helper()
	id := name[:len(name)-len(filepath.Ext(name))]
	body, ct := multipartBody(t, part{"image", name, photo(t, name)}, part{"id", "", []byte(id)}, part{"metadata", "", []byte(meta)})
	r := do(t, "POST", ts.url+"/v1/collections/default/items", ct, body)
	if r.status != http.StatusCreated {
		t.Fatalf("add %s: %d %s", name, r.status, r.body)
	}
}

func (ts *testServer) searchImage(t testing.TB, img []byte, extra ...part) (response, searchResponse) {
	t.Helper()
	body, ct := multipartBody(t, append([]part{{"image", "q.jpg", img}}, extra...)...)
	r := do(t, "POST", ts.url+"/v1/collections/default/search", ct, body)
	var sr searchResponse
	if r.status == http.StatusOK {
		r.json(t, &sr)
	}
	return r, sr
}

func ukName(i int) string { return fmt.Sprintf("ukbench%05d.jpg", i) }
