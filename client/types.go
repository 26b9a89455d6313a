package client

import (
	"encoding/json"
	"time"
)

// Collection describes a collection.
type Collection struct {
	Name           string `json:"name"`
	Count          int    `json:"count"`
	Dims           int    `json:"dims"`
	Fingerprint    string `json:"fingerprint"`
	Model          string `json:"model"`
	Profile        string `json:"profile"` // the descriptor profile of its vectors
	Levels         int    `json:"levels"`
	M              int    `json:"m"`
	EfConstruction int    `json:"ef_construction"`
	EfSearch       int    `json:"ef_search"`
	DiskBytes      int64  `json:"disk_bytes"`
}

// CollectionSpec creates a collection; zero index parameters take the server's defaults.
type CollectionSpec struct {
	Name           string `json:"name"`
	Profile        string `json:"profile,omitempty"` // descriptor profile ("": the server's model.profile)
	M              int    `json:"m,omitempty"`
	EfConstruction int    `json:"ef_construction,omitempty"`
	EfSearch       int    `json:"ef_search,omitempty"`
}

// Item is a stored item. Version changes with every write of it: send it back as a precondition
// (NewItem.IfVersion, PatchItem's ifVersion) to write only over what you read.
type Item struct {
	ID           string          `json:"id"`
	Version      uint64          `json:"version"`
	Metadata     json.RawMessage `json:"metadata"`
	ThumbnailURL string          `json:"thumbnail_url"`
	Fingerprint  string          `json:"fingerprint,omitempty"`
	Dims         int             `json:"dims,omitempty"`
	UpdatedAt    time.Time       `json:"updated_at"`
	// Vector is the stored unit vector, present only when asked for (withVector, ListOptions).
	Vector []float32 `json:"vector,omitempty"`
	// Labels are the model's top labels for the photo (GetItem only).
	Labels []Label `json:"labels,omitempty"`
}

// Label is one of the model's labels for a photo.
type Label struct {
	Name string  `json:"name"`
	Prob float32 `json:"prob"`
}

// NewItem is an item to add: a photo (JPEG, PNG, GIF, WebP, BMP, TIFF) and its metadata (a JSON
// object). Without ID the server names it by the photo's content. IfVersion, when not 0, stores it
// only if the stored item is at that version (409 version_conflict otherwise).
type NewItem struct {
	ID        string
	Image     []byte
	Metadata  json.RawMessage
	IfVersion uint64
}

// Duplicate is a stored item that an added photo duplicates.
type Duplicate struct {
	ID    string  `json:"id"`
	Score float32 `json:"score"`
	Tier  string  `json:"tier"`
}

// AddResult says what adding one item did: Outcome created, replaced, unchanged or merged (Item
// is then the item merged into).
type AddResult struct {
	Item            *Item      `json:"item"`
	Outcome         string     `json:"outcome"`
	NearDuplicateOf *Duplicate `json:"near_duplicate_of"`
	MergedInto      string     `json:"merged_into,omitempty"`
}

// BatchItemResult is one item's answer in AddItems: its AddResult, or Error.
type BatchItemResult struct {
	ID     string `json:"id"`
	Status int    `json:"status"`
	AddResult
	Error *Error `json:"error,omitempty"`
}

// BatchResult is AddItems' answer: one result per item, in order.
type BatchResult struct {
	Results []BatchItemResult `json:"results"`
	Stored  int               `json:"stored"`
	Failed  int               `json:"failed"`
}

// PatchResult is PatchItem's answer: Outcome updated, or unchanged (nothing written, the version
// kept).
type PatchResult struct {
	Outcome string `json:"outcome"`
	Item    Item   `json:"item"`
}

// ListOptions select a page of items in id order.
type ListOptions struct {
	Filter     any    // expression string or JSON filter value; nil: every item
	Cursor     string // NextCursor of the previous page
	Limit      int    // 1..1000; 0: the server's default (50)
	WithVector bool   // include the stored vectors (an export)
}

// ItemPage is a page of items. With a filter a page may hold fewer items than the limit (even
// none) and still have a NextCursor; "" means the end.
type ItemPage struct {
	Items      []Item `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// Bulk selects one page of items by filter for UpdateWhere and DeleteWhere: Filter, or All to
// select every item (never by omission).
type Bulk struct {
	Filter any    `json:"filter,omitempty"`
	All    bool   `json:"all,omitempty"`
	Cursor string `json:"cursor,omitempty"`
	Limit  int    `json:"limit,omitempty"` // 1..1000; 0: 100
	DryRun bool   `json:"dry_run,omitempty"`
}

// BulkReport is what one UpdateWhere or DeleteWhere call did; continue with NextCursor until "".
type BulkReport struct {
	Matched         int               `json:"matched"`
	Updated         int               `json:"updated"`
	Unchanged       int               `json:"unchanged"`
	Trashed         int               `json:"trashed"`
	Skipped         int               `json:"skipped"`
	Failed          map[string]string `json:"failed"`
	IDs             []string          `json:"ids"`
	NextCursor      string            `json:"next_cursor"`
	DryRun          bool              `json:"dry_run"`
	RestorableUntil time.Time         `json:"restorable_until"`
}

// Params are the parameters every query takes (search, similar, recommend). Zero values take the
// server's defaults.
type Params struct {
	K          int      `json:"k,omitempty"`
	Ef         int      `json:"ef,omitempty"`
	Filter     any      `json:"filter,omitempty"` // expression string or JSON filter value
	MinScore   *float32 `json:"min_score,omitempty"`
	ExcludeIDs []string `json:"exclude_ids,omitempty"`
	Cursor     string   `json:"cursor,omitempty"` // NextCursor of the previous page
	Exact      bool     `json:"exact,omitempty"`
	Diversify  *bool    `json:"diversify,omitempty"`
	Rerank     string   `json:"rerank,omitempty"` // none, qe, kr or qe+kr; "": the server's default
}

// Rect is a region of a query photo, in pixels.
type Rect struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

// Query is a search: exactly one of Image (a photo; Crop picks a region of it), ID (a stored
// item) and Vector.
type Query struct {
	Image []byte `json:"image,omitempty"`
	// PhotoID names a photo the server kept from an earlier image search (SearchResponse.PhotoID),
	// so it need not be sent again; kept a day after its last use, not across restarts.
	PhotoID string    `json:"photo_id,omitempty"`
	ID      string    `json:"id,omitempty"`
	Vector  []float32 `json:"vector,omitempty"`
	Crop    *Rect     `json:"crop,omitempty"`
	Params
}

// Example is one example of a recommendation: a stored item (ID) or a vector, with a weight
// (0 means 1).
type Example struct {
	ID     string    `json:"id,omitempty"`
	Vector []float32 `json:"vector,omitempty"`
	Weight float64   `json:"weight,omitempty"`
}

// Recommendation asks for items like the positive examples and unlike the negative ones. The
// examples' items are never among the results.
type Recommendation struct {
	Positive []Example `json:"positive"`
	Negative []Example `json:"negative,omitempty"`
	Params
}

// Result is one hit; Score is the cosine similarity.
type Result struct {
	ID           string          `json:"id"`
	Score        float32         `json:"score"`
	Metadata     json.RawMessage `json:"metadata"`
	ThumbnailURL string          `json:"thumbnail_url"`
	// Weak: Score is below SearchResponse.WeakBelow, the nearest item rather than a close match.
	Weak bool `json:"weak"`
}

// SearchResponse is the answer of every query. NextCursor, sent back as Params.Cursor, gives the
// next page ("" when there is none).
type SearchResponse struct {
	Results    []Result           `json:"results"`
	Model      string             `json:"model"`
	Rerank     string             `json:"rerank"` // the re-ranking applied: none, qe, kr or qe+kr
	TimingsMS  map[string]float64 `json:"timings_ms"`
	NextCursor string             `json:"next_cursor"`
	// WeakBelow is the server's match threshold for the collection (quality.min_score).
	WeakBelow float32 `json:"weak_below"`
	// PhotoID (image searches) names the query photo the server keeps for a while: Query.PhotoID.
	PhotoID string `json:"photo_id,omitempty"`
}

// Answer is one query's answer in a batch: a SearchResponse when Status is 200, else Error.
type Answer struct {
	Status int `json:"status"`
	SearchResponse
	Error *Error `json:"error,omitempty"`
}

// Err is the answer's error (nil on success), with its status.
func (a *Answer) Err() error {
	if a.Error == nil {
		return nil
	}
	a.Error.Status = a.Status
	return a.Error
}
