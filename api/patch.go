package api

// Metadata edits without a new photo: PATCH .../items/{id} with a JSON merge patch (RFC 7386) of
// the item, and the same patch, or a move to the trash, for the items a filter matches
// (POST .../items:update, .../items:delete), one bounded page per call. The edits are package
// edit's; this file parses requests and shapes answers.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/edit"
)

func (s *Server) registerEditRoutes(v1 fiber.Router, write fiber.Handler) {
	v1.Patch("/collections/:c/items/:id", write, s.handlePatchItem)
	v1.Post("/collections/:c/items\\:update", write, s.handleUpdateWhere)
	v1.Post("/collections/:c/items\\:delete", write, s.handleDeleteWhere)
}

// readOnlyMembers are the item's members a patch may not change: they follow from the photo and
// the store, not from the client.
var readOnlyMembers = []string{"id", "version", "thumbnail_url", "fingerprint", "dims", "updated_at", "labels", "vector"}

// patchRequest is a parsed PATCH body: the metadata member of the merge patch (nil: not named)
// and the precondition.
type patchRequest struct {
	metadata  json.RawMessage
	ifVersion uint64
}

// parsePatch reads the merge patch of an item: {"metadata": {...} | null, "if_version": N}.
func (s *Server) parsePatch(c *fiber.Ctx) (*patchRequest, error) {
	switch mediaType(c) {
	case "application/merge-patch+json", fiber.MIMEApplicationJSON:
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, "unsupported_content_type",
			"send a JSON merge patch (RFC 7386) as application/merge-patch+json or application/json")
	}
	body := bytes.TrimSpace(c.Body())
	if !utf8.Valid(body) || !json.Valid(body) || len(body) == 0 || body[0] != '{' {
		return nil, errorf(http.StatusBadRequest, "invalid_patch", "the body must be a JSON object: a merge patch of the item, e.g. {\"metadata\": {\"price\": 12, \"old_field\": null}}")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid_patch", "malformed patch: %v", err)
	}
	req := &patchRequest{}
	for name, v := range members {
		switch {
		case name == "metadata":
			if len(v) > s.cfg.Limits.MaxMetadataBytes {
				return nil, errorf(http.StatusRequestEntityTooLarge, "metadata_too_large", "the metadata patch is %d bytes, the limit is %d", len(v), s.cfg.Limits.MaxMetadataBytes)
			}
			req.metadata = bytes.Clone(v)
		case name == "if_version":
			var err error
			if req.ifVersion, err = parseVersion("if_version", string(v)); err != nil {
				return nil, err
			}
		case slices.Contains(readOnlyMembers, name):
			return nil, errorf(http.StatusBadRequest, "read_only_field", "%s cannot be patched: only metadata can (a new photo is a new add)", name).with("field", name)
		default:
			return nil, errorf(http.StatusBadRequest, "invalid_patch", "an item has no member %q; a patch names metadata (and if_version as its precondition)", name).with("field", name)
		}
	}
	ir := &itemRequest{IfVersion: req.ifVersion}
	if err := ifMatch(c, ir); err != nil {
		return nil, err
	}
	req.ifVersion = ir.IfVersion
	return req, nil
}

// handlePatchItem applies a merge patch to one item's metadata: no new photo, no new embedding.
// The item's version changes when the metadata does; a patch that changes nothing writes nothing.
func (s *Server) handlePatchItem(c *fiber.Ctx) error {
	col, id, err := s.itemTarget(c)
	if err != nil {
		return err
	}
	if cm := s.cluster.Load(); cm != nil {
		return cm.patch(s, c, col, id)
	}
	req, err := s.parsePatch(c)
	if err != nil {
		return err
	}
	patch := req.metadata
	if patch == nil {
		patch = json.RawMessage("{}") // no metadata member: the metadata stays as it is
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	res, err := edit.Patch(ctx, col, id, patch, req.ifVersion, s.editOptions())
	if err != nil {
		return itemErr(err, col, id)
	}
	outcome := "unchanged"
	if res.Changed {
		outcome = "updated"
	}
	it := res.Item
	c.Set(fiber.HeaderETag, etag(it.Version))
	return c.JSON(fiber.Map{"outcome": outcome, "item": itemJSON{ID: it.ID, Version: it.Version, Metadata: metadataOrEmpty(it.Metadata),
		ThumbnailURL: thumbnailURL(col.Name(), it.ID), Fingerprint: col.Fingerprint(), Dims: col.Config().Dims, UpdatedAt: it.UpdatedAt}})
}

func (s *Server) editOptions() edit.Options {
	return edit.Options{MaxMetadataBytes: s.cfg.Limits.MaxMetadataBytes}
}

// bulkRequest selects one page of items by filter for items:update and items:delete.
type bulkRequest struct {
	Filter   json.RawMessage `json:"filter"`
	All      bool            `json:"all"`
	Metadata json.RawMessage `json:"metadata"`
	Cursor   string          `json:"cursor"`
	Limit    int             `json:"limit"`
	DryRun   bool            `json:"dry_run"`
}

// bulkTarget reads a bulk request and its collection: a filter, or all: true to select every item
// (never by omission).
func (s *Server) bulkTarget(c *fiber.Ctx) (*index.Collection, *bulkRequest, edit.Selection, error) {
	col, err := s.collection(c)
	if err != nil {
		return nil, nil, edit.Selection{}, err
	}
	req, sel, err := parseBulk(c, col)
	return col, req, sel, err
}

func parseBulk(c *fiber.Ctx, col *index.Collection) (*bulkRequest, edit.Selection, error) {
	var req bulkRequest
	if err := jsonBody(c, &req); err != nil {
		return nil, edit.Selection{}, err
	}
	f, err := parseFilter(req.Filter)
	if err != nil {
		return nil, edit.Selection{}, err
	}
	switch {
	case f == nil && !req.All:
		return nil, edit.Selection{}, errorf(http.StatusBadRequest, "filter_required",
			"name the items with a filter, or send \"all\": true to select every item").with("parameter", "filter")
	case f != nil && req.All:
		return nil, edit.Selection{}, badRequest("give a filter or \"all\": true, not both")
	case req.Limit < 0 || req.Limit > edit.MaxBulk:
		return nil, edit.Selection{}, invalidQuery("limit", "limit must be in 1..%d (0 or absent: %d), got %d", edit.MaxBulk, edit.DefaultBulk, req.Limit)
	}
	if err := checkFilterFields(col, f); err != nil {
		return nil, edit.Selection{}, err
	}
	return &req, edit.Selection{Filter: f, Cursor: req.Cursor, Limit: req.Limit, DryRun: req.DryRun}, nil
}

// handleUpdateWhere applies a metadata merge patch to one page of the items a filter matches.
func (s *Server) handleUpdateWhere(c *fiber.Ctx) error {
	col, req, sel, err := s.bulkTarget(c)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(req.Metadata)) == 0 {
		return badRequest("metadata (a merge patch: an object, null members remove fields) is required")
	}
	// Checked once here, so that a patch that can never apply fails the call, not every item.
	if _, err := edit.PatchMetadata(nil, req.Metadata, s.editOptions()); err != nil {
		return err
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	rep, err := edit.UpdateWhere(ctx, col, sel, req.Metadata, s.editOptions())
	if err != nil {
		return err
	}
	return c.JSON(rep)
}

// handleDeleteWhere moves one page of the items a filter matches to the trash (restorable with
// trash:restore until intel.trash_retention passes).
func (s *Server) handleDeleteWhere(c *fiber.Ctx) error {
	col, req, sel, err := s.bulkTarget(c)
	if err != nil {
		return err
	}
	if req.Metadata != nil {
		return badRequest("items:delete takes no metadata (items:update patches it)")
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	s.purgeTrash(ctx, col)
	rep, err := edit.DeleteWhere(ctx, col, sel)
	if err != nil {
		return err
	}
	return c.JSON(struct {
		edit.Report
		RestorableUntil time.Time `json:"restorable_until"`
	}{rep, time.Now().Add(s.cfg.Intel.TrashRetention).UTC()})
}
