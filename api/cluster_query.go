package api

// Searches in cluster mode (docs/cluster.md): search, similar, recommend and their batches
// scatter over every shard through Cluster.Search. Each shard leaves out the excluded ids before
// it cuts its top, and returns the first offset+k+1 of its shard, so the merged ranking pages with
// the single node's cursors (an offset in the result window) and says whether another page exists.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/intel"
	"github.com/lookalike/lookalike/rerank"
)

// noEmbedTimings are the timings of a query that embeds nothing (a vector, a stored item).
func noEmbedTimings() map[string]float64 {
	return map[string]float64{"decode": 0, "preprocess": 0, "inference": 0}
}

// search embeds the query here (image, kept photo) or takes its vector or stored item, and
// scatters it to every shard.
func (cm *clusterMode) search(s *Server, c *fiber.Ctx, col *index.Collection) error {
	start := time.Now()
	req, err := parseSearch(c, s.cfg.Limits.MaxK, s.cfg.Limits.DefaultK)
	if err != nil {
		return err
	}
	return cm.answer(s, c, col, req, start)
}

// similar searches with a stored item's vector (read from a replica of its shard), leaving the
// item itself out.
func (cm *clusterMode) similar(s *Server, c *fiber.Ctx, col *index.Collection, id string) error {
	start := time.Now()
	req, err := s.parseSimilar(c, id)
	if err != nil {
		return err
	}
	return cm.answer(s, c, col, req, start)
}

// answer runs query and writes its answer, naming the query photo of an image search.
func (cm *clusterMode) answer(s *Server, c *fiber.Ctx, col *index.Collection, req *searchRequest, start time.Time) error {
	ctx, cancel := s.requestContext(c)
	defer cancel()
	out, err := cm.query(ctx, s, c, col, req, start, noEmbedTimings())
	if err != nil {
		return err
	}
	if req.Image != nil { // kept here, as on a single node, to search it again by photo_id
		out.PhotoID = s.photos.put(req.Image)
	}
	return c.JSON(out)
}

// query answers one validated search over every shard: its vector is the embedded image or kept
// photo, the given vector, or the stored item's (read from a replica of its shard, with min_seq,
// and then excluded like an exclude_ids entry).
func (cm *clusterMode) query(ctx context.Context, s *Server, c *fiber.Ctx, col *index.Collection, req *searchRequest, start time.Time, timings map[string]float64) (*searchResponse, error) {
	q, err := clusterQuery(c, req)
	if err != nil {
		return nil, err
	}
	if req.ID != "" {
		it, err := cm.c.Get(ctx, col.Name(), req.ID, ClusterRead{MinSeq: q.MinSeq})
		if err != nil {
			return nil, itemErr(clusterErr(err), col, req.ID)
		}
		q.Vector = it.Vector
		req.ExcludeIDs = append(req.ExcludeIDs, req.ID)
	} else if q.Vector, err = s.queryVector(ctx, col, req, timings); err != nil {
		return nil, err
	}
	return cm.run(ctx, s, col, req, q, start, timings)
}

// run scatters q (its vector, filter and min_seq set) with req's page, exclusions, min_score and
// exact, and shapes the single node's answer: the page at the cursor's offset, next_cursor when
// another page exists inside the result window, and coverage when some shard did not answer.
// Re-ranking and diversification are not served in cluster mode: rerank answers "none".
func (cm *clusterMode) run(ctx context.Context, s *Server, col *index.Collection, req *searchRequest, q ClusterQuery, start time.Time, timings map[string]float64) (*searchResponse, error) {
	// One extra result says whether another page exists, as on a single node (validate cut the
	// page to end at the result window at most).
	more := req.offset+req.K < index.MaxK
	q.K, q.ExcludeIDs, q.Exact = req.offset+req.K, req.ExcludeIDs, req.Exact
	if more {
		q.K++
	}
	searchStart := time.Now()
	res, shards, of, err := cm.c.Search(ctx, col.Name(), q)
	if err != nil {
		return nil, clusterErr(err)
	}
	searchDur := time.Since(searchStart)
	cm.searches.Inc()
	weak := float32(spec.ThresholdFor(col.Fingerprint(), s.cfg.Quality.MinScore))
	out := &searchResponse{Results: []resultJSON{}, WeakBelow: weak, Model: s.engineOf(col).Info().ModelID, Collection: col.Name(),
		TimingsMS: timings, Rerank: rerank.ModeNone.String(), Coverage: coverage(shards, of)}
	if out.Coverage != nil {
		cm.partial.Inc()
	}
	res = res[min(req.offset, len(res)):]
	kept := res[:0:0]
	for _, r := range res {
		if req.MinScore == nil || r.Score >= *req.MinScore {
			kept = append(kept, r)
		}
	}
	if len(kept) > req.K {
		kept = kept[:req.K]
		if more {
			out.NextCursor = encodeCursor(req.offset + req.K)
		}
	}
	for _, r := range kept {
		out.Results = append(out.Results, resultJSON{ID: r.ID, Score: r.Score, Metadata: metadataOrEmpty(r.Metadata),
			ThumbnailURL: thumbnailURL(col.Name(), r.ID), Weak: r.Score < weak})
	}
	total := time.Since(start)
	timings["search"], timings["total"] = msf(searchDur), msf(total)
	s.stats.query(timings["inference"] > 0, total)
	return out, nil
}

// recommend answers one recommendation as a single node does (intel's query from the examples,
// the examples excluded), with the examples' vectors read from replicas of their shards.
func (cm *clusterMode) recommend(ctx context.Context, s *Server, c *fiber.Ctx, col *index.Collection, r *recommendRequest, start time.Time) (*searchResponse, error) {
	ms, err := minSeq(c)
	if err != nil {
		return nil, err
	}
	var ids []string
	resolve := func(in []exampleJSON, kind string) ([]exampleJSON, error) {
		out := make([]exampleJSON, len(in))
		for i, e := range in {
			out[i] = e
			// Too many examples, or an id with a vector: intel refuses them, without reads.
			if e.ID == "" || e.Vector != nil || len(r.Positive)+len(r.Negative) > intel.MaxExamples {
				continue
			}
			it, err := cm.c.Get(ctx, col.Name(), e.ID, ClusterRead{MinSeq: ms})
			if errors.Is(err, index.ErrNotFound) {
				return nil, errorf(http.StatusNotFound, "item_not_found", "%s", publicMessage(fmt.Errorf("%s example %q: %w", kind, e.ID, err)))
			}
			if err != nil {
				return nil, clusterErr(err)
			}
			ids = append(ids, e.ID)
			out[i].ID, out[i].Vector = "", it.Vector
		}
		return out, nil
	}
	byVector := *r
	if byVector.Positive, err = resolve(r.Positive, "positive"); err != nil {
		return nil, err
	}
	if byVector.Negative, err = resolve(r.Negative, "negative"); err != nil {
		return nil, err
	}
	req, err := s.recommendSearch(col, &byVector)
	if err != nil {
		return nil, err
	}
	req.ExcludeIDs = append(req.ExcludeIDs, ids...)
	q, err := clusterQuery(c, req)
	if err != nil {
		return nil, err
	}
	q.Vector = req.Vector
	return cm.run(ctx, s, col, req, q, start, noEmbedTimings())
}

// explainReads are what explain reads in cluster mode: items (with their thumbnails) from
// replicas of their shards, and the average match (the mean vector of the query's nearest items)
// from a scatter-gather search and the items' vectors; min_seq applies to both.
func (cm *clusterMode) explainReads(s *Server, c *fiber.Ctx, col *index.Collection) (func(string) (index.Item, error), func(context.Context, []float32) []float32) {
	get := func(id string) (index.Item, error) {
		return cm.read(s, c, col, id, ClusterRead{Thumbnail: true})
	}
	averageMatch := func(ctx context.Context, query []float32) []float32 {
		ms, err := minSeq(c)
		if err != nil {
			return nil
		}
		res, _, _, err := cm.c.Search(ctx, col.Name(), ClusterQuery{Vector: query, K: explainBaseline, MinSeq: ms})
		if err != nil {
			return nil // as on a single node: no baseline, the plain heatmap
		}
		vecs := make([][]float32, 0, len(res))
		for _, r := range res {
			if it, err := cm.c.Get(ctx, col.Name(), r.ID, ClusterRead{MinSeq: ms}); err == nil {
				vecs = append(vecs, it.Vector)
			}
		}
		return intel.MeanVector(vecs)
	}
	return get, averageMatch
}
