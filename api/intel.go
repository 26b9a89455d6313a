package api

// Ingest policy for duplicates (on_duplicate). The detection itself is package intel's
// (intel.Detector.FindDuplicate, called through findDuplicate in intel_handlers.go).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/index"
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

// mergeInto adds the fields of meta that the stored item lacks; its image and vector stay.
func mergeInto(ctx context.Context, col *index.Collection, id string, meta json.RawMessage) (index.Item, error) {
	it, err := col.Get(id)
	if err != nil {
		return it, err
	}
	var add map[string]json.RawMessage
	if len(meta) == 0 || json.Unmarshal(meta, &add) != nil || len(add) == 0 {
		return it, nil
	}
	have := map[string]json.RawMessage{}
	if len(it.Metadata) > 0 {
		if err := json.Unmarshal(it.Metadata, &have); err != nil {
			return it, fmt.Errorf("item %q: stored metadata: %w", id, err)
		}
	}
	changed := false
	for k, v := range add {
		if _, ok := have[k]; !ok {
			have[k], changed = v, true
		}
	}
	if !changed {
		return it, nil
	}
	if it.Metadata, err = json.Marshal(have); err != nil {
		return it, err
	}
	it.UpdatedAt = time.Now().UTC()
	return it, col.Upsert(ctx, it)
}
