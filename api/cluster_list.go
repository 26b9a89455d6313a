package api

// Cluster mode's reads of a whole collection (docs/cluster.md, "Serving the REST API"): listing
// and counting items, the collections and the stats, each with the collection's items counted
// over every shard. The single node's response shapes, plus coverage when a shard did not answer.

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/index"
)

// ClusterList is a listing (or a count) of a whole collection: every shard lists the items after
// Cursor in id order, and the pages merge in id order.
type ClusterList struct {
	Cursor string
	Limit  int
	// Filter is a metadata filter expression (index.ParseFilter syntax; "" = every item).
	Filter     string
	WithVector bool
	// Count: count the matching items instead of listing them.
	Count  bool
	MinSeq uint64
}

// ClusterPage is a merged listing: Items (without renditions) and the Next cursor, or the Count;
// Shards of Of shards answered.
type ClusterPage struct {
	Items      []index.Item
	Next       string
	Count      int
	Shards, Of int
}

// coverage is nil when every shard answered.
func coverage(shards, of int) *clusterCoverage {
	if shards < of {
		return &clusterCoverage{Shards: shards, Of: of}
	}
	return nil
}

// listQuery reads what GET .../items and .../items:count take in cluster mode: the single node's
// parameters (a filter as an expression or a JSON object, sent on as an expression) and min_seq.
func listQuery(c *fiber.Ctx) (ClusterList, error) {
	var q ClusterList
	var err error
	if v := strings.TrimSpace(c.Query("filter")); v != "" {
		f, err := parseFilter(rawFilter(v))
		if err != nil {
			return q, err
		}
		q.Filter = f.String()
	}
	if q.WithVector, err = queryBool(c, "with_vector"); err != nil {
		return q, err
	}
	q.MinSeq, err = minSeq(c)
	return q, err
}

// list answers GET .../items over every shard: {items, next_cursor} as on a single node, plus
// coverage when a shard did not answer (its items are missing from this page and the next).
func (cm *clusterMode) list(s *Server, c *fiber.Ctx, col *index.Collection, limit int) error {
	q, err := listQuery(c)
	if err != nil {
		return err
	}
	q.Cursor, q.Limit = strings.Clone(c.Query("cursor")), limit
	ctx, cancel := s.requestContext(c)
	defer cancel()
	page, err := cm.c.List(ctx, col.Name(), q)
	if err != nil {
		return clusterErr(err)
	}
	out := make([]itemJSON, 0, len(page.Items))
	for _, it := range page.Items {
		out = append(out, itemJSON{ID: it.ID, Version: it.Version, Metadata: metadataOrEmpty(it.Metadata),
			ThumbnailURL: thumbnailURL(col.Name(), it.ID), UpdatedAt: it.UpdatedAt, Vector: it.Vector})
	}
	body := fiber.Map{"items": out, "next_cursor": page.Next}
	if cv := coverage(page.Shards, page.Of); cv != nil {
		body["coverage"] = cv
	}
	return c.JSON(body)
}

// count answers GET .../items:count: the shards' counts summed.
func (cm *clusterMode) count(s *Server, c *fiber.Ctx, col *index.Collection) error {
	q, err := listQuery(c)
	if err != nil {
		return err
	}
	q.Count = true
	ctx, cancel := s.requestContext(c)
	defer cancel()
	page, err := cm.c.List(ctx, col.Name(), q)
	if err != nil {
		return clusterErr(err)
	}
	body := fiber.Map{"count": page.Count}
	if cv := coverage(page.Shards, page.Of); cv != nil {
		body["coverage"] = cv
	}
	return c.JSON(body)
}

// clusterCollection is a collection the cluster serves: its local info (config, fingerprint,
// dims) with the items counted over every shard, and the count's coverage.
type clusterCollection struct {
	info     index.CollectionInfo
	coverage *clusterCoverage
}

// collections are the local collections the cluster serves (a collection it does not serve
// counts as not found there), each counted over the cluster.
func (cm *clusterMode) collections(ctx context.Context, infos []index.CollectionInfo) ([]clusterCollection, error) {
	var out []clusterCollection
	for _, ci := range infos {
		page, err := cm.c.List(ctx, ci.Name, ClusterList{Count: true})
		if errors.Is(err, index.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, clusterErr(err)
		}
		// Levels and disk size are this node's replicas' business, not the collection's.
		ci.Count, ci.Levels, ci.DiskBytes = page.Count, 0, 0
		out = append(out, clusterCollection{info: ci, coverage: coverage(page.Shards, page.Of)})
	}
	return out, nil
}

// collectionInfos are the collections GET /v1/collections and /v1/stats describe: the local ones
// on a single node, the served ones counted over the cluster in cluster mode (with coverage).
func (s *Server) collectionInfos(ctx context.Context, infos []index.CollectionInfo) ([]index.CollectionInfo, []*clusterCoverage, error) {
	cm := s.cluster.Load()
	if cm == nil {
		return infos, make([]*clusterCoverage, len(infos)), nil
	}
	cols, err := cm.collections(ctx, infos)
	if err != nil {
		return nil, nil, err
	}
	out, cov := make([]index.CollectionInfo, len(cols)), make([]*clusterCoverage, len(cols))
	for i, cc := range cols {
		out[i], cov[i] = cc.info, cc.coverage
	}
	return out, cov, nil
}

// clusterFieldsScan bounds the items GET .../fields reads in cluster mode: every page of a cluster
// listing reads a page from every shard, so the summary comes from a smaller sample than a single
// node's (fields it misses are left out; truncated says the values may be incomplete).
const clusterFieldsScan = 20_000

// fields answers GET .../fields from the first clusterFieldsScan items of the cluster's listing,
// cached for fieldsCacheTTL (the count is not at hand to tell a change).
func (cm *clusterMode) fields(s *Server, c *fiber.Ctx, col *index.Collection) error {
	key := "cluster/" + col.Name()
	if e, ok := s.fieldsCache.Load(key); ok {
		if entry := e.(fieldsCacheEntry); time.Since(entry.at) < fieldsCacheTTL {
			return c.JSON(fiber.Map{"fields": entry.fields})
		}
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	accs, complete, err := scanFields(func(cursor string) ([]index.Item, string, error) {
		page, err := cm.c.List(ctx, col.Name(), ClusterList{Cursor: cursor, Limit: 1000})
		return page.Items, page.Next, clusterErr(err)
	}, clusterFieldsScan)
	if err != nil {
		return err
	}
	fields := summariseFields(accs, complete)
	s.fieldsCache.Store(key, fieldsCacheEntry{at: time.Now(), fields: fields})
	return c.JSON(fiber.Map{"fields": fields})
}

// notServedInCluster is the 501 of the collection routes cluster mode does not serve.
func notServedInCluster(c *fiber.Ctx) error {
	msg := "%s %s is not served in cluster mode yet; cluster mode serves item add (one or a batch), get, patch and delete, listing and counting items, thumbnails and sources, similar items, image and vector search, the collection and its fields, stats and GET /v1/cluster (docs/cluster.md)"
	if c.Path() == "/v1/collections" && c.Method() == http.MethodPost || c.Method() == http.MethodDelete && clusterCollectionPath.MatchString(c.Path()) {
		msg = "%s %s: a cluster serves one collection (data.default_collection, on every node); collections are not created or dropped in cluster mode (docs/cluster.md)"
	}
	return errorf(http.StatusNotImplemented, "not_in_cluster_mode", msg, c.Method(), c.Path())
}

// listLimit reads ?limit= of a listing (50 when absent, 1..maxListLimit).
func listLimit(c *fiber.Ctx) (int, error) {
	v := c.Query("limit")
	if v == "" {
		return 50, nil
	}
	limit, err := strconv.Atoi(v)
	if err != nil || limit < 1 || limit > maxListLimit {
		return 0, invalidQuery("limit", "limit must be in 1..%d, got %q", maxListLimit, v)
	}
	return limit, nil
}
