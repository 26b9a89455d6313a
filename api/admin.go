package api

import (
	"bufio"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
)

// handleBackup streams a consistent snapshot of the whole data file (a bbolt read transaction, so
// writers keep going while it streams). Restore it with `lookalike restore FILE`.
func (s *Server) handleBackup(c *fiber.Ctx) error {
	name := fmt.Sprintf("lookalike-backup-%s.db", time.Now().UTC().Format("20060102T150405Z"))
	c.Set(fiber.HeaderContentType, "application/octet-stream")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	log := s.log.With("request_id", requestID(c))
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		n, err := s.db.Backup(w)
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			// Headers are gone already: the client sees a truncated body, which restore rejects.
			log.Error("backup failed", "bytes", n, "err", err)
			return
		}
		log.Info("backup streamed", "bytes", n)
	})
	return nil
}
