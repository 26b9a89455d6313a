package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/internal/locate"
)

// TestE2EModelFaultsRefuseToStart: a missing, corrupt or tampered model file, or a model whose
// input shape does not match the configuration, stops `lookalike serve` at once with a non-zero
// status and one last stderr line naming the problem; the data directory is left alone.
func TestE2EModelFaultsRefuseToStart(t *testing.T) {
	bin := lookalikeBinary(t)
	real, _, err := locate.ModelFiles(spec.DefaultModel())
	if err != nil {
		t.Fatal(err)
	}
	realBytes, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:])
	}
	garbageSum := write("garbage.onnx", []byte(strings.Repeat("this is not an onnx model\n", 200)))
	truncSum := write("truncated.onnx", realBytes[:len(realBytes)/2])
	emptySum := write("empty.onnx", nil)
	models := "LOOKALIKE_EMBED_MODEL_DIRS=" + dir

	cases := []struct {
		name string
		env  []string
		want []string // every one must appear in the last stderr line (case-insensitive)
	}{
		{"missing file", []string{models, "LOOKALIKE_MODEL_FILE=no-such-model.onnx"}, []string{"no-such-model.onnx", "not found"}},
		{"garbage file", []string{models, "LOOKALIKE_MODEL_FILE=garbage.onnx", "LOOKALIKE_MODEL_SHA256=" + garbageSum}, []string{"garbage.onnx"}},
		{"truncated file", []string{models, "LOOKALIKE_MODEL_FILE=truncated.onnx", "LOOKALIKE_MODEL_SHA256=" + truncSum}, []string{"truncated.onnx"}},
		{"empty file", []string{models, "LOOKALIKE_MODEL_FILE=empty.onnx", "LOOKALIKE_MODEL_SHA256=" + emptySum}, []string{"empty.onnx"}},
		{"wrong checksum", []string{"LOOKALIKE_MODEL_SHA256=" + strings.Repeat("ab", 32)}, []string{"sha256", strings.Repeat("ab", 32)}},
		// A damaged copy of the pinned model: the file is parsed before its checksum is compared,
		// so the line says "not an ONNX model" rather than naming the checksum (see docs/reliability.md).
		{"tampered copy", []string{models, "LOOKALIKE_MODEL_FILE=truncated.onnx"}, []string{"truncated.onnx", "model"}},
		{"wrong input size", []string{"LOOKALIKE_MODEL_INPUT_SIZE=320", "LOOKALIKE_MODEL_RESIZE_SHORTER=352"}, []string{"input", "shape", "320"}},
		{"wrong layout", []string{"LOOKALIKE_MODEL_LAYOUT=NHWC"}, []string{"input", "shape", "NHWC"}},
		{"wrong input name", []string{"LOOKALIKE_MODEL_INPUT=pixels"}, []string{"pixels"}},
		{"wrong embedding tensor", []string{"LOOKALIKE_MODEL_EMBEDDING_TENSOR=no_such_tensor"}, []string{"no_such_tensor"}},
		{"wrong embedding dim", []string{"LOOKALIKE_MODEL_EMBEDDING_DIM=512"}, []string{"512"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "serve", "--addr", "127.0.0.1:0", "--data", data)
			cmd.Env = serverEnv(tc.env...)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("still running after 60s (it should refuse to start):\n%s", out)
			}
			if err == nil {
				t.Fatalf("started with a bad model (exit 0):\n%s", out)
			}
			line := lastLine(string(out))
			for _, w := range tc.want {
				if !strings.Contains(strings.ToLower(line), strings.ToLower(w)) {
					t.Errorf("last line does not name %q:\n%s", w, line)
				}
			}
			if !strings.HasPrefix(line, "lookalike serve: ") {
				t.Errorf("last line is not the command's error: %q", line)
			}
			if n := strings.Count(strings.TrimSpace(string(out)), "\n") + 1; n > 3 {
				t.Errorf("%d lines of output for one problem:\n%s", n, out)
			}
			if _, err := os.Stat(filepath.Join(data, "lookalike.db")); err == nil {
				t.Errorf("a data file was created although the server refused to start")
			}
			t.Logf("exit %v: %s", err, line)
		})
	}
}

// TestE2ECorruptGraphSnapshotIsRebuilt flips bytes in, then truncates, the stored HNSW snapshot
// while the server is stopped: the next start detects it (checksum), says so in the log, rebuilds
// the graph from the stored vectors, and every item is still found by its own photo.
func TestE2ECorruptGraphSnapshotIsRebuilt(t *testing.T) {
	photos := e2ePhotos(t, 48)
	data := t.TempDir()
	env := []string{"LOOKALIKE_INDEX_EXACT_THRESHOLD=-1"} // search through the graph
	srv := startServer(t, data, env...)
	var items []e2eItem
	for p := range photos {
		items = append(items, e2eItem{id: fmt.Sprintf("snap-%02d", p), photo: p, meta: map[string]any{"p": p}})
	}
	for i := 0; i < len(items); i += 12 {
		if ids, res := postBatch(t.Context(), srv.url, items[i:i+12], photos); len(ids) != 12 {
			t.Fatalf("ingest: %d %v %s", res.status, res.err, res.body)
		}
	}
	if code := srv.terminate(30 * time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, srv.stderr.String())
	}
	for _, damage := range []struct {
		name string
		fn   func([]byte) []byte
	}{
		{"flipped bytes", func(b []byte) []byte {
			b = append([]byte(nil), b...)
			for i := len(b) / 3; i < len(b)/3+8; i++ {
				b[i] ^= 0x5a
			}
			return b
		}},
		{"truncated", func(b []byte) []byte { return append([]byte(nil), b[:len(b)/2]...) }},
		{"emptied", func(b []byte) []byte { return []byte{} }},
	} {
		t.Run(damage.name, func(t *testing.T) {
			damageSnapshot(t, filepath.Join(data, "lookalike.db"), "default", damage.fn)
			srv := startServer(t, data, env...)
			if !srv.waitLog("graph snapshot unusable, rebuilding") {
				t.Errorf("the damaged snapshot was not reported:\n%s", srv.stderr.String())
			}
			checkItemsHTTP(t, srv.url, items, items, photos)
			// A clean stop writes a fresh snapshot, so the next damage starts from a good one.
			if code := srv.terminate(30 * time.Second); code != 0 {
				t.Fatalf("exit %d:\n%s", code, srv.stderr.String())
			}
			var logs syncBuffer
			checkDataDir(t, data, items, &logs)
			if !strings.Contains(logs.String(), "from=snapshot") {
				t.Errorf("no fresh snapshot after the rebuild and a clean stop: %s", logs.String())
			}
		})
	}
}

// damageSnapshot rewrites collections/<col>/graph in the bbolt file (see index/snapshot.go) with
// fn(old), through bbolt itself so that only the snapshot, not the file, is damaged.
func damageSnapshot(t *testing.T, path, col string, fn func([]byte) []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("collections")).Bucket([]byte(col))
		old := b.Get([]byte("graph"))
		if len(old) == 0 {
			return fmt.Errorf("collection %s has no graph snapshot", col)
		}
		return b.Put([]byte("graph"), fn(old))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new folder, or skips the test where mounts are not
// allowed (the file-system faults below need a real read-only or full file system: the tests run
// as root, and chmod does not stop root).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root and mount rights): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

func remount(t *testing.T, dir, opts string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+opts, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v %s", opts, dir, err, out)
	}
}

func errorCode(body []byte) string {
	var e struct {
		Error struct {
			Code, Message string
		} `json:"error"`
	}
	json.Unmarshal(body, &e)
	return e.Error.Code
}

// TestE2EReadOnlyDataDir: on a read-only file system the server starts, answers every read and
// refuses every write with a 503 JSON error naming the cause; a read-only folder with no data file
// yet stops the start with one clear line.
func TestE2EReadOnlyDataDir(t *testing.T) {
	photos := e2ePhotos(t, 12)
	mnt := mountTmpfs(t, "16m")
	data := filepath.Join(mnt, "data")
	srv := startServer(t, data)
	var items []e2eItem
	for p := 0; p < 8; p++ {
		items = append(items, e2eItem{id: fmt.Sprintf("ro-%d", p), photo: p, meta: map[string]any{"p": p}})
	}
	if ids, res := postBatch(t.Context(), srv.url, items, photos); len(ids) != len(items) {
		t.Fatalf("ingest: %d %v %s", res.status, res.err, res.body)
	}
	if code := srv.terminate(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	remount(t, mnt, "ro")

	srv = startServer(t, data)
	if !srv.waitLog("read-only") {
		t.Errorf("no log line says the data is read-only:\n%s", srv.stderr.String())
	}
	checkItemsHTTP(t, srv.url, items, items[:2], photos)
	if r := httpDo(t.Context(), "GET", itemURL(srv.url, "ro-1")+"/thumbnail", "", nil); r.status != http.StatusOK {
		t.Errorf("thumbnail on a read-only store: %d %s", r.status, r.body)
	}
	// A backup stages its snapshot outside the read-only data directory.
	if r := httpDo(t.Context(), "GET", srv.url+"/v1/admin/backup", "", nil); r.status != http.StatusOK || len(r.body) == 0 || r.header.Get("Content-Length") != strconv.Itoa(len(r.body)) {
		t.Errorf("backup of a read-only store: %d, %d bytes, Content-Length %q %.200s", r.status, len(r.body), r.header.Get("Content-Length"), r.body)
	}
	more := []e2eItem{{id: "ro-new", photo: 9, meta: map[string]any{}}}
	writes := []struct {
		name string
		do   func() httpResult
	}{
		{"batch", func() httpResult {
			_, r := postBatch(t.Context(), srv.url, more, photos)
			var br batchResponse
			json.Unmarshal(r.body, &br)
			if r.status == http.StatusOK && len(br.Results) == 1 {
				// The batch answers 200 with per-item results; the item's own status is what counts.
				r.status = br.Results[0].Status
				r.body = br.Results[0].Error
				r.body = []byte(`{"error":` + string(r.body) + `}`)
			}
			return r
		}},
		{"single item", func() httpResult {
			return httpDo(t.Context(), "POST", srv.url+"/v1/collections/default/items", "application/json",
				[]byte(`{"id":"ro-new","image":"`+b64(photos[10])+`"}`))
		}},
		{"delete", func() httpResult { return httpDo(t.Context(), "DELETE", itemURL(srv.url, "ro-2"), "", nil) }},
		{"create collection", func() httpResult {
			return httpDo(t.Context(), "POST", srv.url+"/v1/collections", "application/json", []byte(`{"name":"other"}`))
		}},
	}
	for _, w := range writes {
		r := w.do()
		if r.err != nil || r.status != http.StatusServiceUnavailable || errorCode(r.body) != "read_only" {
			t.Errorf("%s on a read-only store: %d %v %s (want 503 read_only)", w.name, r.status, r.err, r.body)
		}
	}
	checkItemsHTTP(t, srv.url, items, nil, photos)
	if code := srv.terminate(30 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM on a read-only store:\n%s", code, srv.stderr.String())
	}
	checkDataDir(t, data, items, nil)

	// A read-only folder without a data file: nothing to serve, so the start fails clearly.
	remount(t, mnt, "rw")
	empty := filepath.Join(mnt, "empty")
	os.Mkdir(empty, 0o755)
	remount(t, mnt, "ro")
	p := startProc(t, empty)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("still running on a read-only folder without data")
	}
	line := lastLine(p.stderr.String())
	if p.code == 0 || !strings.Contains(line, "read-only") {
		t.Errorf("exit %d, last line %q (want non-zero and a line naming the read-only store)", p.code, line)
	}
}

// TestE2EDiskFull fills a small tmpfs by ingesting until writes fail: they fail with 503
// storage_unavailable, reads keep working meanwhile, and after a restart (on the still-full disk,
// then with room again) every acknowledged item is intact and the file passes bbolt's check.
func TestE2EDiskFull(t *testing.T) {
	photos := e2ePhotos(t, 400)
	mnt := mountTmpfs(t, "1m")
	data := filepath.Join(mnt, "data")
	srv := startServer(t, data)
	var acked []e2eItem
	var full httpResult
	fullAt := -1
	for p := 0; p < len(photos) && fullAt < 0; p += 4 {
		var batch []e2eItem
		for i := p; i < p+4 && i < len(photos); i++ {
			batch = append(batch, e2eItem{id: fmt.Sprintf("full-%03d", i), photo: i, meta: map[string]any{"p": i, "pad": strings.Repeat("x", 200)}})
		}
		ids, res := postBatch(t.Context(), srv.url, batch, photos)
		if res.err != nil || res.status != http.StatusOK {
			t.Fatalf("batch: %d %v %s", res.status, res.err, res.body)
		}
		var br batchResponse
		json.Unmarshal(res.body, &br)
		for i, r := range br.Results {
			if r.Status == http.StatusCreated {
				continue
			}
			if r.Status != http.StatusServiceUnavailable || errorCode([]byte(`{"error":`+string(r.Error)+`}`)) != "storage_unavailable" {
				t.Fatalf("a failed write on a full disk: item %d status %d %s (want 503 storage_unavailable)", i, r.Status, r.Error)
			}
			full, fullAt = res, p
		}
		for _, id := range ids {
			for _, it := range batch {
				if it.id == id {
					acked = append(acked, it)
				}
			}
		}
	}
	if fullAt < 0 {
		t.Fatalf("the 1 MiB tmpfs never filled up after %d items", len(acked))
	}
	t.Logf("disk full after %d items: %.300s", len(acked), full.body)
	// Reads keep working, single writes fail the same way, and nothing acknowledged is damaged.
	checkItemsHTTP(t, srv.url, acked, acked[:3], photos)
	// Single writes fail the same way once the space freed by failed transactions is used up; any
	// that is still acknowledged must survive like the others.
	refused := false
	for i := 0; i < 40 && !refused; i++ {
		it := e2eItem{id: fmt.Sprintf("one-more-%d", i), photo: len(photos) - 1 - i, meta: map[string]any{"pad": strings.Repeat("y", 4000)}}
		body, _ := json.Marshal(map[string]any{"id": it.id, "image": b64(photos[it.photo]), "metadata": it.meta})
		r := httpDo(t.Context(), "POST", srv.url+"/v1/collections/default/items", "application/json", body)
		switch {
		case r.status == http.StatusCreated:
			acked = append(acked, it)
		case r.status == http.StatusServiceUnavailable && errorCode(r.body) == "storage_unavailable" && strings.Contains(string(r.body), "no space left"):
			refused = true
		default:
			t.Fatalf("single write on a full disk: %d %.300s (want 201 or 503 storage_unavailable naming the lack of space)", r.status, r.body)
		}
	}
	if !refused {
		t.Errorf("40 more single writes all succeeded on a full 1 MiB disk")
	}
	code := srv.terminate(30 * time.Second)
	t.Logf("exit %d after SIGTERM on a full disk; log:\n%s", code, srv.stderr.String())
	checkDataDir(t, data, acked, nil)

	// Restart on the still-full disk: reads must work.
	srv = startServer(t, data)
	checkItemsHTTP(t, srv.url, acked, acked[len(acked)-3:], photos)
	srv.terminate(30 * time.Second)
	checkDataDir(t, data, acked, nil)

	// With room again, writes work again.
	remount(t, mnt, "size=64m")
	srv = startServer(t, data)
	if ids, res := postBatch(t.Context(), srv.url, []e2eItem{{id: "after-full", photo: 0, meta: map[string]any{}}}, photos); len(ids) != 1 {
		t.Errorf("write after freeing space: %d %s", res.status, res.body)
	}
	checkItemsHTTP(t, srv.url, acked, nil, photos)
	if code := srv.terminate(30 * time.Second); code != 0 {
		t.Errorf("exit %d:\n%s", code, srv.stderr.String())
	}
	checkDataDir(t, data, acked, nil)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
