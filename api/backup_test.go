package api

// Hot backups over a slow link (issue 12): a backup download must not hold the store's read
// transaction while the client reads (bbolt cannot remap a growing file meanwhile, so every write
// would wait for the download), must not be cut by the general write timeout, and must not keep
// a stopping server past its shutdown timeout.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// bulkBatch is an NDJSON batch of n items of about 48 KB each (mostly metadata), so a few batches
// grow the data file by megabytes.
func bulkBatch(t testing.TB, prefix string, n int, jpg []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	pad := strings.Repeat("lookalike-backup-padding-", 48<<10/25)
	for i := 0; i < n; i++ {
		line, err := json.Marshal(map[string]any{
			"id": fmt.Sprintf("%s-%03d", prefix, i), "image": jpg,
			"metadata": map[string]any{"pad": pad, "i": i},
		})
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// seedBulk fills the default collection until the data file holds at least size bytes.
func seedBulk(t testing.TB, url, dir string, size int64, jpg []byte) int {
	t.Helper()
	n := 0
	for b := 0; ; b++ {
		if st, err := os.Stat(filepath.Join(dir, index.FileName)); err == nil && st.Size() >= size {
			return n
		}
		// Small batches: each request must finish well within the tests' short write timeouts, also
		// on a loaded machine.
		r := do(t, "POST", url+"/v1/collections/default/items:batch", "application/x-ndjson", bytes.NewReader(bulkBatch(t, fmt.Sprintf("seed%03d", b), seedBatch, jpg)))
		if r.status != 200 || !strings.Contains(string(r.body), `"failed":0`) {
			t.Fatalf("seed: %d %.300s", r.status, r.body)
		}
		n += seedBatch
	}
}

const seedBatch = 4

// slowGet sends GET path over a raw TCP connection with a small receive buffer, so that the
// server's writes block as they do for a client on a slow link.
func slowGet(t testing.TB, baseURL, path string) (net.Conn, *http.Response) {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	addr := strings.TrimPrefix(baseURL, "http://")
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr)
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4<<10), nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, resp
}

// slowLink gives the server's sockets small send buffers, as on a long, slow link where the kernel
// cannot take megabytes ahead of the client: the server's writes then follow the client's reading.
type slowLink struct{ net.Listener }

func (l slowLink) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(32 << 10)
	}
	return c, err
}

// startSlowLinkServer starts a server with the scripted embedder behind slowLink.
func startSlowLinkServer(t *testing.T, log *slog.Logger, mutate func(*config.Config)) (*testServer, func() error) {
	t.Helper()
	return serveTest(t, &scriptedEmbedder{}, log, mutate, func(l net.Listener) net.Listener { return slowLink{l} })
}

// readSlowly copies r to w at about rate bytes per second.
func readSlowly(w io.Writer, r io.Reader, rate int) (int64, error) {
	const chunk = 16 << 10
	buf := make([]byte, chunk)
	start := time.Now()
	var n int64
	for {
		k, err := r.Read(buf)
		w.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if ahead := time.Duration(float64(n)/float64(rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
}

// TestBackupSlowClient downloads a 5 MB backup at 2 MB/s, far slower than the store, while writers
// ingest and readers query: the download outlasts server.write_timeout and still completes; the
// file verifies as restore verifies it; writes and reads started during the download are answered
// as usual (no write waits for the download); no snapshot file is left behind.
func TestBackupSlowClient(t *testing.T) {
	const writeTimeout = time.Second
	ts, _ := startSlowLinkServer(t, nil, func(c *config.Config) { c.Server.WriteTimeout = writeTimeout })
	jpg := reencode(t, photo(t, ukName(4)), 0.2, 60)
	seeded := seedBulk(t, ts.url, ts.dir, 5<<20, jpg)

	type op struct {
		kind       string
		start, end time.Time
		status     int
	}
	var mu sync.Mutex
	var ops []op
	record := func(kind string, start time.Time, status int) {
		mu.Lock()
		ops = append(ops, op{kind, start, time.Now(), status})
		mu.Unlock()
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // writer: about 400 KB per request
		defer wg.Done()
		for b := 0; ctx.Err() == nil; b++ {
			start := time.Now()
			r := do(t, "POST", ts.url+"/v1/collections/default/items:batch", "application/x-ndjson", bytes.NewReader(bulkBatch(t, fmt.Sprintf("during%03d", b), 8, jpg)))
			record("write", start, r.status)
		}
	}()
	go func() { // reader: an item and its neighbours
		defer wg.Done()
		for ctx.Err() == nil {
			start := time.Now()
			r := do(t, "GET", ts.url+"/v1/collections/default/items/seed000-001/similar?k=5", "", nil)
			record("similar", start, r.status)
			time.Sleep(20 * time.Millisecond)
		}
	}()

	time.Sleep(200 * time.Millisecond) // writes are landing
	dlStart := time.Now()
	_, resp := slowGet(t, ts.url, "/v1/admin/backup")
	var backup bytes.Buffer
	n, err := readSlowly(&backup, resp.Body, 2<<20)
	dlEnd := time.Now()
	stop()
	wg.Wait()
	took := dlEnd.Sub(dlStart)
	t.Logf("backup: %d bytes in %s (Content-Length %d); %d items seeded", n, took.Round(time.Millisecond), resp.ContentLength, seeded)
	if resp.StatusCode != 200 || err != nil || n != resp.ContentLength {
		t.Fatalf("backup: status %d, read %d of %d bytes, err %v", resp.StatusCode, n, resp.ContentLength, err)
	}
	if took < 2*writeTimeout {
		t.Fatalf("the download took %s, not past the write timeout (%s): the test proves nothing", took, writeTimeout)
	}

	// The file is what restore accepts: meta pages and length, bbolt's check, every seeded item.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, index.FileName), backup.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := index.CheckFile(filepath.Join(dir, index.FileName)); err != nil {
		t.Fatalf("the backup is damaged: %v", err)
	}
	db, err := index.Open(dir, &index.Options{NoSync: true, SnapshotInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Check(); err != nil {
		t.Errorf("bbolt check: %v", err)
	}
	if cs := db.Collections(); len(cs) != 1 || cs[0].Count < seeded {
		t.Errorf("restored collections %+v, want default with at least %d items", cs, seeded)
	}
	db.Close()

	// Writes and reads started while the download ran were answered as usual: none waited for
	// it. (With the read transaction held for the download, the first write that needs a larger
	// memory map waits until the download ends.)
	var writes, inSecondHalf int
	var slowest time.Duration
	for _, o := range ops {
		if o.start.Before(dlStart) || o.start.After(dlEnd) {
			continue
		}
		if o.status != 200 {
			t.Errorf("%s during the backup: %d", o.kind, o.status)
		}
		if o.kind == "write" {
			writes++
			if o.end.After(dlStart.Add(took/2)) && o.end.Before(dlEnd) {
				inSecondHalf++
			}
		}
		slowest = max(slowest, o.end.Sub(o.start))
	}
	t.Logf("%d writes during the download (%d finished in its second half); slowest request %s", writes, inSecondHalf, slowest.Round(time.Millisecond))
	if inSecondHalf < 2 || slowest > took/2 {
		t.Errorf("requests waited for the download: %d writes finished in its second half, slowest request %s of a %s download", inSecondHalf, slowest, took)
	}
	// The snapshot copy is gone once the download is over.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		entries, _ := os.ReadDir(ts.dir)
		var extra []string
		for _, e := range entries {
			if e.Name() != index.FileName {
				extra = append(extra, e.Name())
			}
		}
		if len(extra) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("files left in the data directory: %v", extra)
			break
		}
	}
}

// TestShutdownCutsStalledBackup: a client that stops reading a backup must not keep a stopping
// server past server.shutdown_timeout: its download is cut (and logged), Serve returns without
// error, and the store closes at once.
func TestShutdownCutsStalledBackup(t *testing.T) {
	const shutdownTimeout = time.Second
	logs := &syncLog{}
	ts, stop := startSlowLinkServer(t, slog.New(slog.NewTextHandler(logs, nil)), func(c *config.Config) {
		c.Server.ShutdownTimeout = shutdownTimeout
	})
	url := ts.url
	seedBulk(t, url, ts.dir, 4<<20, reencode(t, photo(t, ukName(4)), 0.2, 60))

	_, resp := slowGet(t, url, "/v1/admin/backup")
	if resp.StatusCode != 200 {
		t.Fatalf("backup: %d", resp.StatusCode)
	}
	io.CopyN(io.Discard, resp.Body, 64<<10) // then the client stalls
	time.Sleep(300 * time.Millisecond)

	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		took := time.Since(start)
		t.Logf("Serve returned %v after %s", err, took.Round(time.Millisecond))
		if err != nil || took > shutdownTimeout+time.Second {
			t.Errorf("shutdown with a stalled backup: %v after %s (shutdown_timeout %s)", err, took, shutdownTimeout)
		}
	case <-time.After(shutdownTimeout + 5*time.Second):
		t.Fatalf("Serve still running %s after the shutdown began", shutdownTimeout+5*time.Second)
	}
	closed := make(chan error, 1)
	go func() { closed <- ts.db.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("close: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("the store does not close: the backup still holds it")
	}
	if l := logs.String(); !strings.Contains(l, "backup download cut") {
		t.Errorf("no log line says the backup download was cut:\n%s", l)
	}
}

// TestStalledBackupIsCut: server.write_timeout bounds each write of a download, not the whole: a
// client that stops reading is cut after it, logged, and its snapshot released.
func TestStalledBackupIsCut(t *testing.T) {
	logs := &syncLog{}
	ts, _ := startSlowLinkServer(t, slog.New(slog.NewTextHandler(logs, nil)), func(c *config.Config) {
		c.Server.WriteTimeout = 3 * time.Second // long enough for a seed batch on a loaded machine, short enough to wait for
	})
	seedBulk(t, ts.url, ts.dir, 4<<20, reencode(t, photo(t, ukName(4)), 0.2, 60))
	_, resp := slowGet(t, ts.url, "/v1/admin/backup")
	io.CopyN(io.Discard, resp.Body, 64<<10) // then the client stalls
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "backup download cut: the client stopped reading"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a stalled download was not cut:\n%s", logs.String())
		}
	}
	if r := do(t, "GET", ts.url+"/healthz", "", nil); r.status != 200 {
		t.Errorf("healthz: %d", r.status)
	}
}
