package api

// Reading a collection by metadata rather than by similarity: GET .../items with a filter
// (scroll, export with vectors) and GET .../items:count. The index walks the items in id order
// and bounds the records one page examines (index.DefaultScrollScan), so a selective filter over
// a large collection answers a short page with a cursor instead of reading everything at once.

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/index"
)

// rawFilter turns a filter given as a query or form value into parseFilter's input: a JSON
// object as it is, anything else as an expression string.
func rawFilter(v string) json.RawMessage {
	if strings.HasPrefix(v, "{") {
		return json.RawMessage(v)
	}
	return json.RawMessage(strconv.Quote(v))
}

// queryFilter reads ?filter= (an expression or a JSON object) and checks its fields against the
// collection's; nil when absent.
func queryFilter(c *fiber.Ctx, col *index.Collection) (*index.Filter, error) {
	v := strings.TrimSpace(c.Query("filter"))
	if v == "" {
		return nil, nil
	}
	f, err := parseFilter(rawFilter(v))
	if err != nil {
		return nil, err
	}
	return f, checkFilterFields(col, f)
}

// queryBool reads a boolean query parameter (true, false, 1, 0; absent = false).
func queryBool(c *fiber.Ctx, name string) (bool, error) {
	v := c.Query(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, invalidQuery(name, "%s must be true or false, got %q", name, v)
	}
	return b, nil
}

// maxListLimit bounds GET items?limit=: one page of a listing.
const maxListLimit = 1000

// handleListItems lists items in id order: all of them, or those matching ?filter=; with
// ?with_vector=true each carries its stored vector (an export).
func (s *Server) handleListItems(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	limit, err := listLimit(c)
	if err != nil {
		return err
	}
	if cm := s.cluster.Load(); cm != nil {
		return cm.list(s, c, col, limit)
	}
	f, err := queryFilter(c, col)
	if err != nil {
		return err
	}
	withVector, err := queryBool(c, "with_vector")
	if err != nil {
		return err
	}
	items, next, err := col.Scroll(index.ScrollOptions{Cursor: strings.Clone(c.Query("cursor")), Limit: limit, Filter: f, WithVector: withVector})
	if err != nil {
		return err
	}
	out := make([]itemJSON, 0, len(items))
	for _, it := range items {
		out = append(out, itemJSON{ID: it.ID, Version: it.Version, Metadata: metadataOrEmpty(it.Metadata),
			ThumbnailURL: thumbnailURL(col.Name(), it.ID), UpdatedAt: it.UpdatedAt, Vector: it.Vector})
	}
	return c.JSON(fiber.Map{"items": out, "next_cursor": next})
}

// handleCountItems counts the items matching ?filter= (all without one), exactly, from memory.
func (s *Server) handleCountItems(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	if cm := s.cluster.Load(); cm != nil {
		return cm.count(s, c, col)
	}
	f, err := queryFilter(c, col)
	if err != nil {
		return err
	}
	n, err := col.Count(f)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"count": n})
}
