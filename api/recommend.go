package api

// Queries for recommendation services: recommend (items like some examples and unlike others),
// and batches of searches, similar-item lookups and recommendations in one call. Each query of a
// batch is answered as a search would be (the same limits, admission control and response shape)
// and gets its own status: one bad query never fails the others.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/intel"
)

// maxBatchQueries bounds the queries of one batch call.
const maxBatchQueries = 100

func (s *Server) registerQueryRoutes(v1 fiber.Router, read fiber.Handler) {
	v1.Post("/collections/:c/recommend", read, s.handleRecommend)
	v1.Post("/collections/:c/recommend\\:batch", read, s.handleRecommendBatch)
	v1.Post("/collections/:c/search\\:batch", read, s.handleSearchBatch)
	v1.Post("/collections/:c/similar\\:batch", read, s.handleSimilarBatch)
}

// exampleJSON is one recommendation example: an item id ("sku-1"), a vector ([0.1, ...]), or an
// object with either and a weight ({"id": "sku-1", "weight": 2}).
type exampleJSON struct {
	ID     string    `json:"id"`
	Vector []float32 `json:"vector"`
	Weight float64   `json:"weight"`
}

func (e *exampleJSON) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, &e.ID)
	case len(b) > 0 && b[0] == '[':
		return json.Unmarshal(b, &e.Vector)
	}
	type plain exampleJSON // without this method
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode((*plain)(e))
}

// queryParams are the parameters a recommendation and a similar batch share with a search.
type queryParams struct {
	K          *int            `json:"k"`
	Ef         int             `json:"ef"`
	Filter     json.RawMessage `json:"filter"`
	MinScore   *float32        `json:"min_score"`
	ExcludeIDs []string        `json:"exclude_ids"`
	Cursor     string          `json:"cursor"`
	Exact      bool            `json:"exact"`
	Diversify  *bool           `json:"diversify"`
	Rerank     string          `json:"rerank"`
}

// search is the search these parameters describe, by vector (or by id), validated.
func (p queryParams) search(s *Server, vector []float32, id string) (*searchRequest, error) {
	req := &searchRequest{Vector: vector, ID: id, KJSON: p.K, Ef: p.Ef, Filter: p.Filter, MinScore: p.MinScore,
		ExcludeIDs: p.ExcludeIDs, Cursor: p.Cursor, Exact: p.Exact, Diversify: p.Diversify, Rerank: p.Rerank}
	if p.K != nil {
		req.K, req.kSet = *p.K, true
	}
	return req, req.validate(s.cfg.Limits.MaxK, s.cfg.Limits.DefaultK)
}

type recommendRequest struct {
	Positive []exampleJSON `json:"positive"`
	Negative []exampleJSON `json:"negative"`
	queryParams
}

// queryAnswer is one query's answer in a batch: a search response, or an error.
type queryAnswer struct {
	Status int `json:"status"`
	*searchResponse
	Error *Error `json:"error,omitempty"`
}

func (s *Server) handleRecommend(c *fiber.Ctx) error {
	start := time.Now()
	col, err := s.embeddable(c)
	if err != nil {
		return err
	}
	var req recommendRequest
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	out, err := s.recommend(ctx, c, col, &req, start)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

// recommend answers one recommendation: the examples' average_vector query (intel), searched
// with the examples themselves excluded.
func (s *Server) recommend(ctx context.Context, c *fiber.Ctx, col *index.Collection, r *recommendRequest, start time.Time) (*searchResponse, error) {
	if cm := s.cluster.Load(); cm != nil {
		return cm.recommend(ctx, s, c, col, r, start)
	}
	req, err := s.recommendSearch(col, r)
	if err != nil {
		return nil, err
	}
	if err := checkFilterFields(col, req.filter); err != nil {
		return nil, err
	}
	return s.runQuery(ctx, col, req, req.Vector, "", start, noEmbedTimings())
}

// recommendSearch is the search a recommendation runs: by the examples' query (intel; the
// examples by id are read from col), with the examples by id excluded.
func (s *Server) recommendSearch(col *index.Collection, r *recommendRequest) (*searchRequest, error) {
	conv := func(in []exampleJSON) []intel.Example {
		out := make([]intel.Example, len(in))
		for i, e := range in {
			out[i] = intel.Example{ID: e.ID, Vector: e.Vector, Weight: e.Weight}
		}
		return out
	}
	pos, neg := conv(r.Positive), conv(r.Negative)
	query, err := intel.RecommendQuery(col, col.Config().Dims, pos, neg)
	if errors.Is(err, index.ErrNotFound) {
		return nil, errorf(http.StatusNotFound, "item_not_found", "%s", publicMessage(err))
	}
	if err != nil {
		return nil, err
	}
	req, err := r.search(s, query, "")
	if err != nil {
		return nil, err
	}
	for _, e := range append(pos, neg...) {
		if e.ID != "" {
			req.ExcludeIDs = append(req.ExcludeIDs, e.ID)
		}
	}
	return req, nil
}

// runBatch answers n queries in order; one that fails gets its error as its answer. A bug (500)
// or the request's own deadline ends the whole call.
func (s *Server) runBatch(c *fiber.Ctx, n int, one func(ctx context.Context, i int) (*searchResponse, error)) error {
	if n == 0 {
		return badRequest("the batch holds no queries")
	}
	if n > maxBatchQueries {
		return errorf(http.StatusRequestEntityTooLarge, "batch_too_large", "the batch holds %d queries, the limit is %d", n, maxBatchQueries)
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	out := make([]queryAnswer, n)
	for i := range out {
		res, err := one(ctx, i)
		if err == nil {
			out[i] = queryAnswer{Status: http.StatusOK, searchResponse: res}
			continue
		}
		if e := classify(err); e.Code == "internal" || ctx.Err() != nil {
			return err
		}
		e := s.classifyLogged(c, err)
		out[i] = queryAnswer{Status: e.Status, Error: e}
	}
	return c.JSON(fiber.Map{"results": out})
}

// batchBody decodes a batch body: one JSON object whose member name holds the queries.
func batchBody(c *fiber.Ctx, name string) ([]json.RawMessage, error) {
	var body map[string][]json.RawMessage
	if err := jsonBody(c, &body); err != nil {
		return nil, err
	}
	for k := range body {
		if k != name {
			return nil, badRequest("a batch body is {%q: [...]}; unknown member %q", name, k)
		}
	}
	return body[name], nil
}

// handleRecommendBatch: {"recommendations": [recommend bodies]}.
func (s *Server) handleRecommendBatch(c *fiber.Ctx) error {
	col, err := s.embeddable(c)
	if err != nil {
		return err
	}
	raws, err := batchBody(c, "recommendations")
	if err != nil {
		return err
	}
	return s.runBatch(c, len(raws), func(ctx context.Context, i int) (*searchResponse, error) {
		var r recommendRequest
		if err := decodeJSONBody(raws[i], &r); err != nil {
			return nil, err
		}
		return s.recommend(ctx, c, col, &r, time.Now())
	})
}

// handleSearchBatch: {"searches": [search bodies as JSON: image (base64), id or vector, ...]}.
func (s *Server) handleSearchBatch(c *fiber.Ctx) error {
	col, err := s.embeddable(c)
	if err != nil {
		return err
	}
	raws, err := batchBody(c, "searches")
	if err != nil {
		return err
	}
	return s.runBatch(c, len(raws), func(ctx context.Context, i int) (*searchResponse, error) {
		start := time.Now()
		req, err := parseSearchJSON(raws[i], s.cfg.Limits.MaxK, s.cfg.Limits.DefaultK)
		if err != nil {
			return nil, err
		}
		timings := noEmbedTimings()
		if cm := s.cluster.Load(); cm != nil {
			return cm.query(ctx, s, c, col, req, start, timings)
		}
		if err := checkFilterFields(col, req.filter); err != nil {
			return nil, err
		}
		query, err := s.queryVector(ctx, col, req, timings)
		if err != nil {
			return nil, err
		}
		return s.runQuery(ctx, col, req, query, "", start, timings)
	})
}

// handleSimilarBatch: {"ids": [...], and the parameters of similar (k, filter, ...)}: more like
// each item, one answer per id, in order.
func (s *Server) handleSimilarBatch(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	var req struct {
		IDs []string `json:"ids"`
		queryParams
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	// The shared parameters are checked once: a bad k is the call's error, not each id's.
	if _, err := req.search(s, nil, "-"); err != nil {
		return err
	}
	f, err := parseFilter(req.Filter)
	if err != nil {
		return err
	}
	cm := s.cluster.Load()
	if cm == nil { // a cluster node's own collection knows no fields: the shards check filters
		if err := checkFilterFields(col, f); err != nil {
			return err
		}
	}
	return s.runBatch(c, len(req.IDs), func(ctx context.Context, i int) (*searchResponse, error) {
		id := req.IDs[i]
		if id == "" {
			return nil, badRequest("ids[%d] is empty", i)
		}
		one, err := req.search(s, nil, id)
		if err != nil {
			return nil, fmt.Errorf("ids[%d]: %w", i, err)
		}
		if cm != nil {
			return cm.query(ctx, s, c, col, one, time.Now(), noEmbedTimings())
		}
		return s.runQuery(ctx, col, one, nil, id, time.Now(), noEmbedTimings())
	})
}
