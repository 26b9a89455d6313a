package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// Catalog intelligence: tag suggestions, bulk tagging and duplicate clusters.

// TagQuery asks for metadata suggestions for a photo (Image) or a stored item (ID). K is the
// number of labelled neighbours voting (0: the server's intel.tag_neighbors).
type TagQuery struct {
	Image []byte `json:"image,omitempty"`
	ID    string `json:"id,omitempty"`
	K     int    `json:"k,omitempty"`
}

// TagSuggestion is one suggested value of a field; Confidence is the similarity-weighted share of
// the voting neighbours that carry it.
type TagSuggestion struct {
	Value      string  `json:"value"`
	Confidence float64 `json:"confidence"`
	Votes      int     `json:"votes"`
}

// TagSuggestions is SuggestTags' answer: the suggestions by field (only fields whose values the
// neighbours share), and the model's labels for the photo or item.
type TagSuggestions struct {
	ID          string                     `json:"id,omitempty"`
	Suggestions map[string][]TagSuggestion `json:"suggestions"`
	Labels      []Label                    `json:"labels"`
	Model       string                     `json:"model"`
}

// TagApply fills the missing fields of a page of items with confident suggestions. Nil
// MinConfidence and zero K take the server's defaults; continue with TagReport.NextCursor.
type TagApply struct {
	Cursor        string   `json:"cursor,omitempty"`
	Limit         int      `json:"limit,omitempty"` // 1..1000; 0: 200
	K             int      `json:"k,omitempty"`
	MinConfidence *float64 `json:"min_confidence,omitempty"`
	Overwrite     bool     `json:"overwrite,omitempty"`
	DryRun        bool     `json:"dry_run,omitempty"`
	Fields        []string `json:"fields,omitempty"`
}

// TagChange is one field ApplyTags wrote (or, in a dry run, would write).
type TagChange struct {
	ID         string          `json:"id"`
	Field      string          `json:"field"`
	Value      string          `json:"value"`
	Previous   json.RawMessage `json:"previous,omitempty"`
	Confidence float64         `json:"confidence"`
}

// TagReport is what one ApplyTags call did.
type TagReport struct {
	Scanned       int            `json:"scanned"`
	Updated       int            `json:"updated"`
	Written       map[string]int `json:"written"`
	LowConfidence int            `json:"low_confidence"`
	Changes       []TagChange    `json:"changes"`
	NextCursor    string         `json:"next_cursor"`
	DryRun        bool           `json:"dry_run"`
}

// DuplicateMember is an item of a duplicate cluster: the first one is the cluster's seed, the
// others carry their tier (exact, near, similar) and cosine score against it.
type DuplicateMember struct {
	ID           string          `json:"id"`
	Score        float32         `json:"score"`
	Tier         string          `json:"tier"`
	Metadata     json.RawMessage `json:"metadata,omitempty"`
	ThumbnailURL string          `json:"thumbnail_url"`
}

// DuplicateCluster is one group of duplicates.
type DuplicateCluster struct {
	Items []DuplicateMember `json:"items"`
}

// DuplicatePage is one page of Duplicates: the clusters found among the items scanned; continue
// with NextCursor until "".
type DuplicatePage struct {
	Tier       string             `json:"tier"`
	Threshold  float32            `json:"threshold"`
	Clusters   []DuplicateCluster `json:"clusters"`
	Scanned    int                `json:"scanned"`
	NextCursor string             `json:"next_cursor"`
}

// SuggestTags suggests metadata for a photo or a stored item.
func (c *Client) SuggestTags(ctx context.Context, collection string, q TagQuery) (*TagSuggestions, error) {
	r, err := jsonRequest(http.MethodPost, collectionPath(collection, "/tags:suggest"), q)
	if err != nil {
		return nil, err
	}
	var out TagSuggestions
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ApplyTags tags one page of items (write scope).
func (c *Client) ApplyTags(ctx context.Context, collection string, a TagApply) (*TagReport, error) {
	r, err := jsonRequest(http.MethodPost, collectionPath(collection, "/tags:apply"), a)
	if err != nil {
		return nil, err
	}
	var out TagReport
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Duplicates returns the duplicate clusters at tier or above (exact, near, similar; "": near)
// among up to limit items after cursor (limit 0: the server's 200).
func (c *Client) Duplicates(ctx context.Context, collection, tier, cursor string, limit int) (*DuplicatePage, error) {
	q := url.Values{}
	if tier != "" {
		q.Set("tier", tier)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out DuplicatePage
	if _, err := c.do(ctx, request{method: http.MethodGet, path: collectionPath(collection, "/duplicates"), query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
