package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestE2EBackupUnderWriteLoad streams GET /v1/admin/backup while batch ingests keep landing,
// restores the file with `lookalike restore` into a new data directory and checks it: it passes
// bbolt's check, holds every item acknowledged before the backup started, identical, and a server
// started on it finds them by their photos.
func TestE2EBackupUnderWriteLoad(t *testing.T) {
	photos := e2ePhotos(t, 160)
	bin := lookalikeBinary(t)
	data := t.TempDir()
	srv := startServer(t, data)

	var before []e2eItem
	for p := 0; p < 40; p += 8 {
		var batch []e2eItem
		for i := p; i < p+8; i++ {
			batch = append(batch, e2eItem{id: fmt.Sprintf("before/%03d", i), photo: i, meta: map[string]any{"phase": "before", "i": i}})
		}
		if ids, res := postBatch(t.Context(), srv.url, batch, photos); len(ids) != len(batch) {
			t.Fatalf("ingest: %d %v %s", res.status, res.err, res.body)
		}
		before = append(before, batch...)
	}

	// Writers keep going for the whole backup.
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var during []e2eItem
	var writeErrs []string
	next := 40
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				if next+3 > len(photos) {
					mu.Unlock()
					return
				}
				var batch []e2eItem
				for i := next; i < next+3; i++ {
					batch = append(batch, e2eItem{id: fmt.Sprintf("during/%03d", i), photo: i, meta: map[string]any{"phase": "during", "i": i}})
				}
				next += 3
				mu.Unlock()
				ids, res := postBatch(ctx, srv.url, batch, photos)
				mu.Lock()
				if res.err == nil && len(ids) != len(batch) {
					writeErrs = append(writeErrs, fmt.Sprintf("%d %s", res.status, res.body))
				}
				for _, it := range batch {
					for _, id := range ids {
						if id == it.id {
							during = append(during, it)
						}
					}
				}
				mu.Unlock()
			}
		}()
	}
	// Let some writes land first, so the backup overlaps them.
	for {
		mu.Lock()
		n := len(during)
		mu.Unlock()
		if n >= 6 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	ackedBeforeBackup := append(append([]e2eItem(nil), before...), during...)
	mu.Unlock()

	backup := filepath.Join(t.TempDir(), "backup.db")
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.url+"/v1/admin/backup", nil)
	resp, err := e2eClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Disposition"), "lookalike-backup-") {
		t.Fatalf("backup: %d %v", resp.StatusCode, resp.Header)
	}
	f, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	// Read slowly, so that writes commit while the snapshot streams.
	var n int64
	buf := make([]byte, 8<<10)
	for {
		k, err := resp.Body.Read(buf)
		f.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("backup stream: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	resp.Body.Close()
	f.Close()
	stop()
	wg.Wait()
	for _, e := range writeErrs {
		t.Errorf("write during backup: %s", e)
	}
	t.Logf("backup of %d bytes; %d items acknowledged before it, %d during the whole test", n, len(ackedBeforeBackup), len(before)+len(during))
	if code := srv.terminate(30 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}

	// Restore into a new data directory with the CLI.
	restored := filepath.Join(t.TempDir(), "restored")
	cmd := exec.Command(bin, "restore", backup, "--data", restored)
	cmd.Env = serverEnv()
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "restored collection default") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	checkDataDir(t, restored, ackedBeforeBackup, nil)

	// A server on the restored data finds the items by their photos.
	srv = startServer(t, restored)
	checkItemsHTTP(t, srv.url, ackedBeforeBackup, []e2eItem{before[0], before[len(before)-1], ackedBeforeBackup[len(ackedBeforeBackup)-1]}, photos)
	srv.terminate(30 * time.Second)

}

// TestE2ERestoreRefusesDamagedBackup: a backup cut short (the stream of GET /v1/admin/backup
// dropped half-way, a disk filled while saving it) or empty is refused by `lookalike restore` with an
// error naming the file, never a crash, and the data directory keeps its current data.
func TestE2ERestoreRefusesDamagedBackup(t *testing.T) {
	photos := e2ePhotos(t, 24)
	bin := lookalikeBinary(t)
	restored := t.TempDir()
	srv := startServer(t, restored)
	var ackedBeforeBackup []e2eItem
	for i := 0; i < 24; i++ {
		ackedBeforeBackup = append(ackedBeforeBackup, e2eItem{id: fmt.Sprintf("keep-%02d", i), photo: i, meta: map[string]any{"i": i}})
	}
	if ids, res := postBatch(t.Context(), srv.url, ackedBeforeBackup, photos); len(ids) != len(ackedBeforeBackup) {
		t.Fatalf("ingest: %d %v %s", res.status, res.err, res.body)
	}
	r := httpDo(t.Context(), "GET", srv.url+"/v1/admin/backup", "", nil)
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("backup: %d %v", r.status, r.err)
	}
	whole := r.body
	srv.terminate(30 * time.Second)
	for _, bad := range []struct {
		name string
		data []byte
	}{
		{"cut at a quarter", whole[:len(whole)/4]},
		{"cut at half", whole[:len(whole)/2]},
		{"cut mid-page", whole[:len(whole)*3/4+123]},
		{"cut after the meta pages", whole[:3*4096]},
		{"empty", nil},
	} {
		t.Run(bad.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.db")
			os.WriteFile(path, bad.data, 0o600)
			cmd := exec.Command(bin, "restore", path, "--data", restored)
			cmd.Env = serverEnv()
			out, err := cmd.CombinedOutput()
			switch {
			case err == nil:
				t.Errorf("a damaged backup was restored:\n%s", out)
			case strings.Contains(string(out), "panic:") || strings.Contains(string(out), "goroutine "):
				t.Errorf("restore crashed on a damaged backup instead of refusing it:\n%.1500s", out)
			case !strings.Contains(lastLine(string(out)), path):
				t.Errorf("the error does not name the backup file: %s", lastLine(string(out)))
			}
			checkDataDir(t, restored, ackedBeforeBackup, nil)
		})
	}
}

// TestE2EStopDuringSlowBackup: SIGTERM while a client has stopped reading a backup. The server
// cuts that download when server.shutdown_timeout is nearly spent, says so in its log, and exits 0
// in time (it used to wait for the download's write timeout and exit 1).
func TestE2EStopDuringSlowBackup(t *testing.T) {
	const shutdownTimeout = 2 * time.Second
	photos := e2ePhotos(t, 16)
	srv := startServer(t, t.TempDir(), "LOOKALIKE_SERVER_SHUTDOWN_TIMEOUT="+shutdownTimeout.String())
	// About 8 MB of data, more than the socket buffers hold, so the server's writes block.
	pad := strings.Repeat("lookalike-", 6<<10)
	for b := 0; b < 8; b++ {
		var batch []e2eItem
		for i := 0; i < 16; i++ {
			batch = append(batch, e2eItem{id: fmt.Sprintf("bulk-%d-%02d", b, i), photo: i, meta: map[string]any{"pad": pad}})
		}
		if ids, res := postBatch(t.Context(), srv.url, batch, photos); len(ids) != len(batch) {
			t.Fatalf("ingest: %d %v %.300s", res.status, res.err, res.body)
		}
	}
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		}); err != nil {
			return err
		}
		return serr
	}}
	addr := strings.TrimPrefix(srv.url, "http://")
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/admin/backup HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("backup: %v %v", resp, err)
	}
	io.CopyN(io.Discard, resp.Body, 64<<10) // then the client stalls
	time.Sleep(300 * time.Millisecond)

	start := time.Now()
	code := srv.terminate(shutdownTimeout + 20*time.Second)
	took := time.Since(start)
	t.Logf("exit %d after %s", code, took.Round(time.Millisecond))
	if code != 0 || took > shutdownTimeout+1500*time.Millisecond {
		t.Errorf("SIGTERM during a stalled backup: exit %d after %s (shutdown_timeout %s)\n%s", code, took, shutdownTimeout, srv.stderr.String())
	}
	if !strings.Contains(srv.stderr.String(), "backup download cut") {
		t.Errorf("the log does not say the backup download was cut:\n%s", srv.stderr.String())
	}
}
