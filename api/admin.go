package api

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
)

// handleBackup streams a consistent snapshot of the whole data file. The snapshot is copied to a
// local file first (index.DB.BackupFile: a short read transaction at disk speed) and that file is
// streamed, so a slow client never holds the store's read transaction: bbolt cannot grow its
// memory map while one is open, and every write would wait for the download. Restore the file
// with `lookalike restore FILE`.
func (s *Server) handleBackup(c *fiber.Ctx) error {
	if c.Method() == fiber.MethodHead {
		c.Set(fiber.HeaderContentType, "application/octet-stream")
		return nil // no snapshot for a response without a body
	}
	start := time.Now()
	f, size, err := s.db.BackupFile()
	if err != nil {
		return err
	}
	s.log.Info("backup snapshot staged", "request_id", requestID(c), "bytes", size, "ms", time.Since(start).Milliseconds())
	name := fmt.Sprintf("lookalike-backup-%s.db", time.Now().UTC().Format("20060102T150405Z"))
	c.Set(fiber.HeaderContentType, "application/octet-stream")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	d := &download{f: f, size: size, conn: c.Context().Conn(), timeout: s.cfg.Server.WriteTimeout,
		log: s.log.With("request_id", requestID(c)), started: time.Now(), done: s.downloads.remove}
	s.downloads.add(d)
	// A known length: a client (and restore) can tell a cut download from a complete one.
	c.Context().SetBodyStream(d, int(size))
	return nil
}

// download streams one backup snapshot to one client; fasthttp reads it and closes it when the
// response is over, however it ended.
//
// server.write_timeout bounds each write, not the whole download: a Read means the previous chunk
// reached the socket, so each Read moves the connection's write deadline write_timeout ahead. A
// slow client that keeps reading finishes, however long that takes; one that stops reading for
// write_timeout is cut.
type download struct {
	f       *os.File
	size    int64
	conn    net.Conn
	timeout time.Duration
	log     *slog.Logger
	started time.Time
	done    func(*download)

	sent     int64     // Read's goroutine only
	complete bool      // Read saw the end of the file
	extended time.Time // when the write deadline was last moved
	cut      atomic.Bool
	once     sync.Once
}

var _ io.ReadCloser = (*download)(nil)

func (d *download) Read(p []byte) (int, error) {
	// Moving the deadline costs a timer update: at most a few times per timeout is enough.
	if now := time.Now(); d.timeout > 0 && d.conn != nil && now.Sub(d.extended) >= d.timeout/8 {
		d.conn.SetWriteDeadline(now.Add(d.timeout))
		d.extended = now
	}
	n, err := d.f.Read(p)
	d.sent += int64(n)
	if err == io.EOF {
		d.complete = true
	}
	return n, err
}

// Close releases the snapshot (its file is already unlinked) and logs how the download ended.
func (d *download) Close() error {
	d.once.Do(func() {
		d.done(d)
		d.f.Close()
		secs := fmt.Sprintf("%.1f", time.Since(d.started).Seconds())
		switch {
		case d.cut.Load():
			d.log.Warn("backup download cut: the server is shutting down", "bytes", d.sent, "size", d.size, "seconds", secs)
		case !d.complete:
			d.log.Warn("backup download cut: the client stopped reading or went away", "bytes", d.sent, "size", d.size, "seconds", secs)
		default:
			d.log.Info("backup streamed", "bytes", d.sent, "seconds", secs)
		}
	})
	return nil
}

// downloads are the backup downloads in progress, so that shutdown can end them in time.
type downloads struct {
	mu     sync.Mutex
	active map[*download]struct{}
}

func (ds *downloads) add(d *download) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.active == nil {
		ds.active = map[*download]struct{}{}
	}
	ds.active[d] = struct{}{}
}

func (ds *downloads) remove(d *download) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	delete(ds.active, d)
}

// cutAll closes the connections of the downloads in progress; each logs that it was cut.
func (ds *downloads) cutAll() {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for d := range ds.active {
		d.cut.Store(true)
		if d.conn != nil {
			d.conn.Close()
		}
	}
}
