package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// Search finds the items nearest to a photo, a stored item or a vector.
func (c *Client) Search(ctx context.Context, collection string, q Query) (*SearchResponse, error) {
	return c.query(ctx, collectionPath(collection, "/search"), q)
}

// Similar finds the items nearest to a stored item (the fastest path: no photo to embed).
func (c *Client) Similar(ctx context.Context, collection, id string, p Params) (*SearchResponse, error) {
	q, err := p.values()
	if err != nil {
		return nil, err
	}
	var out SearchResponse
	if _, err := c.do(ctx, request{method: http.MethodGet, path: itemPath(collection, id, "/similar"), query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Recommend finds items like r's positive examples and unlike its negative ones.
func (c *Client) Recommend(ctx context.Context, collection string, r Recommendation) (*SearchResponse, error) {
	return c.query(ctx, collectionPath(collection, "/recommend"), r)
}

// SearchBatch runs several searches in one call: one answer per query, in order, each with its
// own status (a bad query fails alone). At most 100 queries.
func (c *Client) SearchBatch(ctx context.Context, collection string, queries []Query) ([]Answer, error) {
	return c.batch(ctx, collectionPath(collection, "/search:batch"), map[string]any{"searches": queries}, len(queries))
}

// SimilarBatch finds the items similar to each of ids, with the same parameters, in one call.
func (c *Client) SimilarBatch(ctx context.Context, collection string, ids []string, p Params) ([]Answer, error) {
	body := struct {
		IDs []string `json:"ids"`
		Params
	}{ids, p}
	return c.batch(ctx, collectionPath(collection, "/similar:batch"), body, len(ids))
}

// RecommendBatch runs several recommendations in one call.
func (c *Client) RecommendBatch(ctx context.Context, collection string, rs []Recommendation) ([]Answer, error) {
	return c.batch(ctx, collectionPath(collection, "/recommend:batch"), map[string]any{"recommendations": rs}, len(rs))
}

func (c *Client) query(ctx context.Context, path string, body any) (*SearchResponse, error) {
	r, err := jsonRequest(http.MethodPost, path, body)
	if err != nil {
		return nil, err
	}
	var out SearchResponse
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) batch(ctx context.Context, path string, body any, n int) ([]Answer, error) {
	if n == 0 {
		return nil, errNoItems
	}
	r, err := jsonRequest(http.MethodPost, path, body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Results []Answer `json:"results"`
	}
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	for i := range out.Results {
		_ = out.Results[i].Err() // give each error its status
	}
	return out.Results, nil
}

// values encodes p as query parameters (GET similar).
func (p Params) values() (url.Values, error) {
	q := url.Values{}
	if p.K != 0 {
		q.Set("k", strconv.Itoa(p.K))
	}
	if p.Ef != 0 {
		q.Set("ef", strconv.Itoa(p.Ef))
	}
	if p.Filter != nil {
		f, err := filterValue(p.Filter)
		if err != nil {
			return nil, err
		}
		q.Set("filter", f)
	}
	if p.MinScore != nil {
		q.Set("min_score", strconv.FormatFloat(float64(*p.MinScore), 'g', -1, 32))
	}
	for _, id := range p.ExcludeIDs {
		q.Add("exclude_ids", id)
	}
	if p.Cursor != "" {
		q.Set("cursor", p.Cursor)
	}
	if p.Exact {
		q.Set("exact", "true")
	}
	if p.Diversify != nil {
		q.Set("diversify", strconv.FormatBool(*p.Diversify))
	}
	if p.Rerank != "" {
		q.Set("rerank", p.Rerank)
	}
	return q, nil
}
