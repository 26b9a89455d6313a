package api

// Ingest policy for duplicates (on_duplicate). The detection itself is package intel's
// (intel.Detector.FindDuplicate, called through findDuplicate in intel_handlers.go).

import (
	"strings"

	"github.com/gofiber/fiber/v2"
)

// --- ingest duplicates ----------------------------------------------------------------------

// Ingest policies for an item that duplicates a stored one (near or exact tier).
const (
	dupAllow  = "allow"  // store it and report near_duplicate_of
	dupReject = "reject" // refuse it: 409 duplicate
	dupMerge  = "merge"  // store nothing new: add its missing metadata fields to the existing item
)

// duplicatePolicy reads on_duplicate from the query string or a form field, defaulting to the config.
func (s *Server) duplicatePolicy(c *fiber.Ctx) (string, error) {
	v := strings.TrimSpace(c.Query("on_duplicate"))
	if v == "" && mediaType(c) == fiber.MIMEMultipartForm {
		if form, err := c.MultipartForm(); err == nil {
			if vs := form.Value["on_duplicate"]; len(vs) > 0 {
				v = strings.TrimSpace(vs[0])
			}
		}
	}
	if v == "" {
		v = s.cfg.Intel.OnDuplicate
	}
	switch v {
	case dupAllow, dupReject, dupMerge:
		return strings.Clone(v), nil
	}
	return "", badRequest("on_duplicate must be allow, reject or merge, got %q", v)
}
