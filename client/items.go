package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
)

// Collections lists the collections.
func (c *Client) Collections(ctx context.Context) ([]Collection, error) {
	var out struct {
		Collections []Collection `json:"collections"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/collections"}, &out)
	return out.Collections, err
}

// Collection describes one collection.
func (c *Client) Collection(ctx context.Context, name string) (*Collection, error) {
	var out Collection
	if _, err := c.do(ctx, request{method: http.MethodGet, path: collectionPath(name, "")}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateCollection creates a collection for the server's model.
func (c *Client) CreateCollection(ctx context.Context, spec CollectionSpec) (*Collection, error) {
	r, err := jsonRequest(http.MethodPost, "/v1/collections", spec)
	if err != nil {
		return nil, err
	}
	var out Collection
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DropCollection deletes a collection and all its items.
func (c *Client) DropCollection(ctx context.Context, name string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: collectionPath(name, ""), query: url.Values{"confirm": {name}}}, nil)
	return err
}

// AddItem adds or replaces one item. onDuplicate is allow, reject or merge ("" = the server's
// intel.on_duplicate).
func (c *Client) AddItem(ctx context.Context, collection string, it NewItem, onDuplicate string) (*AddResult, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, err := w.CreateFormFile("image", "image")
	if err == nil {
		_, err = fw.Write(it.Image)
	}
	for _, f := range [][2]string{{"id", it.ID}, {"metadata", string(it.Metadata)}, {"if_version", versionField(it.IfVersion)}} {
		if err == nil && f[1] != "" {
			err = w.WriteField(f[0], f[1])
		}
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("lookalike: encode the item: %w", err)
	}
	r := request{method: http.MethodPost, path: collectionPath(collection, "/items"), body: buf.Bytes(), contentType: w.FormDataContentType()}
	if onDuplicate != "" {
		r.query = url.Values{"on_duplicate": {onDuplicate}}
	}
	var out AddResult
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func versionField(v uint64) string {
	if v == 0 {
		return ""
	}
	return strconv.FormatUint(v, 10)
}

// AddItems adds many items in one request (NDJSON); each gets its own result, and one bad item
// never fails the others. The server bounds a batch (limits.max_batch_items).
func (c *Client) AddItems(ctx context.Context, collection string, items []NewItem, onDuplicate string) (*BatchResult, error) {
	if len(items) == 0 {
		return nil, errNoItems
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, it := range items {
		line := struct {
			ID        string          `json:"id,omitempty"`
			Image     []byte          `json:"image"`
			Metadata  json.RawMessage `json:"metadata,omitempty"`
			IfVersion uint64          `json:"if_version,omitempty"`
		}{it.ID, it.Image, it.Metadata, it.IfVersion}
		if err := enc.Encode(line); err != nil {
			return nil, fmt.Errorf("lookalike: encode item %q: %w", it.ID, err)
		}
	}
	r := request{method: http.MethodPost, path: collectionPath(collection, "/items:batch"), body: buf.Bytes(), contentType: "application/x-ndjson"}
	if onDuplicate != "" {
		r.query = url.Values{"on_duplicate": {onDuplicate}}
	}
	var out BatchResult
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	for i := range out.Results {
		if e := out.Results[i].Error; e != nil {
			e.Status = out.Results[i].Status
		}
	}
	return &out, nil
}

// GetItem reads one item (withVector: with its stored vector).
func (c *Client) GetItem(ctx context.Context, collection, id string, withVector bool) (*Item, error) {
	r := request{method: http.MethodGet, path: itemPath(collection, id, "")}
	if withVector {
		r.query = url.Values{"with_vector": {"true"}}
	}
	var out Item
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PatchItem edits an item's metadata with a JSON merge patch (RFC 7386): members set to null are
// removed, objects merge, other values replace; what the patch does not name keeps its exact
// bytes. A nil or "null" patch removes all metadata. When ifVersion is not 0 the item must be at
// that version (else an *Error with Code version_conflict). The photo and its vector stay.
func (c *Client) PatchItem(ctx context.Context, collection, id string, metadataPatch json.RawMessage, ifVersion uint64) (*PatchResult, error) {
	if metadataPatch == nil {
		metadataPatch = json.RawMessage("null")
	}
	body := struct {
		Metadata  json.RawMessage `json:"metadata"`
		IfVersion uint64          `json:"if_version,omitempty"`
	}{metadataPatch, ifVersion}
	r, err := jsonRequest(http.MethodPatch, itemPath(collection, id, ""), body)
	if err != nil {
		return nil, err
	}
	r.contentType = "application/merge-patch+json"
	var out PatchResult
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteItem deletes one item (for good; DeleteWhere moves items to the trash instead).
func (c *Client) DeleteItem(ctx context.Context, collection, id string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: itemPath(collection, id, "")}, nil)
	return err
}

// Thumbnail returns the stored thumbnail (JPEG) of an item.
func (c *Client) Thumbnail(ctx context.Context, collection, id string) ([]byte, error) {
	var out []byte
	_, err := c.do(ctx, request{method: http.MethodGet, path: itemPath(collection, id, "/thumbnail")}, &out)
	return out, err
}

// filterValue encodes a filter for a query string: an expression as it is, anything else as JSON.
func filterValue(f any) (string, error) {
	if s, ok := f.(string); ok {
		return s, nil
	}
	b, err := json.Marshal(f)
	if err != nil {
		return "", fmt.Errorf("lookalike: encode the filter: %w", err)
	}
	return string(b), nil
}

// ListItems reads one page of items in id order, all of them or those o.Filter matches.
func (c *Client) ListItems(ctx context.Context, collection string, o ListOptions) (*ItemPage, error) {
	q := url.Values{}
	if o.Filter != nil {
		f, err := filterValue(o.Filter)
		if err != nil {
			return nil, err
		}
		q.Set("filter", f)
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.WithVector {
		q.Set("with_vector", "true")
	}
	var out ItemPage
	if _, err := c.do(ctx, request{method: http.MethodGet, path: collectionPath(collection, "/items"), query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CountItems counts the items filter matches (nil: all), exactly.
func (c *Client) CountItems(ctx context.Context, collection string, filter any) (int, error) {
	q := url.Values{}
	if filter != nil {
		f, err := filterValue(filter)
		if err != nil {
			return 0, err
		}
		q.Set("filter", f)
	}
	var out struct {
		Count int `json:"count"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: collectionPath(collection, "/items:count"), query: q}, &out)
	return out.Count, err
}

// UpdateWhere applies a metadata merge patch to one page of the items b selects.
func (c *Client) UpdateWhere(ctx context.Context, collection string, b Bulk, metadataPatch json.RawMessage) (*BulkReport, error) {
	body := struct {
		Bulk
		Metadata json.RawMessage `json:"metadata"`
	}{b, metadataPatch}
	return c.bulk(ctx, collectionPath(collection, "/items:update"), body)
}

// DeleteWhere moves one page of the items b selects to the trash (restorable until
// RestorableUntil).
func (c *Client) DeleteWhere(ctx context.Context, collection string, b Bulk) (*BulkReport, error) {
	return c.bulk(ctx, collectionPath(collection, "/items:delete"), b)
}

func (c *Client) bulk(ctx context.Context, path string, body any) (*BulkReport, error) {
	r, err := jsonRequest(http.MethodPost, path, body)
	if err != nil {
		return nil, err
	}
	var out BulkReport
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
