package api

// HTTP front of cluster mode (docs/cluster.md): with a Cluster set, item writes go through the
// replicated log and searches scatter to every shard. api knows only this interface; cmd wires
// the cluster package's node into it.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/ingest"
)

// ErrClusterUnavailable is what a Cluster returns when the log has no quorum (or no shard
// answered a search): the API answers 503 cluster_unavailable.
var ErrClusterUnavailable = errors.New("cluster unavailable")

// Cluster is what cluster mode needs from the cluster: writes acknowledged by the replicated log
// (the returned sequence), reads from this node's replicas, and scatter-gather searches.
type Cluster interface {
	// Upsert stores it (ID, Vector, Metadata, Thumbnail, ContentHash, IfVersion) in collection.
	Upsert(ctx context.Context, collection string, it index.Item) (seq uint64, err error)
	// Delete deletes the item.
	Delete(ctx context.Context, collection, id string) (seq uint64, err error)
	// Get reads the item from this node's replica of its shard (index.ErrNotFound when absent,
	// or when this node holds no replica of collection).
	Get(ctx context.Context, collection, id string) (index.Item, error)
	// Search asks every shard of collection for its top k and merges them; shards of of answered.
	Search(ctx context.Context, collection string, vector []float32, k int, filter string) (res []index.Result, shards, of int, err error)
	// Status is the body of GET /v1/cluster.
	Status(ctx context.Context) (any, error)
}

// clusterMode is the cluster and its metrics, registered by SetCluster only: a single node's
// /metrics stays as it was.
type clusterMode struct {
	c        Cluster
	partial  prometheus.Counter
	searches prometheus.Counter
}

// SetCluster switches the server to cluster mode; call it once, before the server takes requests.
func (s *Server) SetCluster(c Cluster) {
	cm := &clusterMode{c: c,
		partial: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "lookalike", Name: "cluster_partial_searches_total",
			Help: "Cluster searches answered with some shards missing (coverage below 1)."}),
		searches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "lookalike", Name: "cluster_searches_total",
			Help: "Cluster searches (scatter-gather over every shard)."}),
	}
	s.reg.MustRegister(cm.partial, cm.searches)
	s.cluster.Store(cm)
}

// clusterRoutes are the /v1 routes cluster mode serves (docs/cluster.md lists them); every other
// /v1 route answers 501 not_in_cluster_mode there.
var clusterRoutes = []struct {
	method string
	path   *regexp.Regexp
}{
	{http.MethodGet, regexp.MustCompile(`^/v1/cluster$`)},
	{http.MethodPost, regexp.MustCompile(`^/v1/collections/[^/]+/items$`)},
	{http.MethodGet, regexp.MustCompile(`^/v1/collections/[^/]+/items/[^/]+$`)},
	{http.MethodDelete, regexp.MustCompile(`^/v1/collections/[^/]+/items/[^/]+$`)},
	{http.MethodPost, regexp.MustCompile(`^/v1/collections/[^/]+/search$`)},
}

// clusterGate answers 501 for the routes cluster mode does not serve (yet).
func (s *Server) clusterGate(c *fiber.Ctx) error {
	if s.cluster.Load() == nil {
		return c.Next()
	}
	for _, r := range clusterRoutes {
		if c.Method() == r.method && r.path.MatchString(c.Path()) {
			return c.Next()
		}
	}
	return errorf(http.StatusNotImplemented, "not_in_cluster_mode",
		"%s %s is not served in cluster mode yet; cluster mode serves item add, get and delete, image and vector search, and GET /v1/cluster (docs/cluster.md)",
		c.Method(), c.Path())
}

func clusterErr(err error) error {
	if errors.Is(err, ErrClusterUnavailable) {
		e := errorf(http.StatusServiceUnavailable, "cluster_unavailable", "%v", err)
		e.RetryAfter = 1 // like every 503 of the API; an election takes about 5 s
		return e
	}
	return err
}

func (s *Server) handleClusterStatus(c *fiber.Ctx) error {
	cm := s.cluster.Load()
	if cm == nil {
		return errorf(http.StatusNotFound, "not_clustered", "this server runs as a single node (cluster.enabled is false)")
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	st, err := cm.c.Status(ctx)
	if err != nil {
		return clusterErr(err)
	}
	return c.JSON(st)
}

// clusterAdd embeds the photo here and publishes the item; acknowledged once the log stored it.
func (cm *clusterMode) add(s *Server, c *fiber.Ctx, col *index.Collection) error {
	req, err := s.parseItem(c)
	if err != nil {
		return err
	}
	in := []ingest.Input{req.input()}
	if errs := ingest.AssignIDs(in); errs[0] != nil {
		return errs[0]
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	embs, err := s.embedAdmitted(ctx, col, embed.Image{Data: req.Image})
	if err != nil {
		return err
	}
	thumb, err := embed.Thumbnail(req.Image, s.cfg.Limits.ThumbnailSize, s.cfg.Limits.ThumbnailQuality, s.cfg.Limits.MaxPixels)
	if err != nil {
		return err
	}
	it := index.Item{ID: in[0].ID, Vector: embs[0].Vector, Metadata: req.Metadata, Thumbnail: thumb,
		ContentHash: ingest.ContentID(req.Image), UpdatedAt: time.Now().UTC(), IfVersion: req.IfVersion}
	seq, err := cm.c.Upsert(ctx, col.Name(), it)
	if err != nil {
		return clusterErr(err)
	}
	return c.Status(http.StatusCreated).JSON(fiber.Map{"id": it.ID, "seq": seq, "metadata": metadataOrEmpty(it.Metadata),
		"thumbnail_url": thumbnailURL(col.Name(), it.ID)})
}

func (cm *clusterMode) get(s *Server, c *fiber.Ctx, col *index.Collection, id string) error {
	ctx, cancel := s.requestContext(c)
	defer cancel()
	it, err := cm.c.Get(ctx, col.Name(), id)
	if err != nil {
		return itemErr(clusterErr(err), col, id)
	}
	c.Set(fiber.HeaderETag, etag(it.Version))
	return c.JSON(itemJSON{ID: it.ID, Version: it.Version, Metadata: metadataOrEmpty(it.Metadata), ThumbnailURL: thumbnailURL(col.Name(), it.ID),
		Fingerprint: col.Fingerprint(), Dims: len(it.Vector), UpdatedAt: it.UpdatedAt})
}

func (cm *clusterMode) delete(s *Server, c *fiber.Ctx, col *index.Collection, id string) error {
	ctx, cancel := s.requestContext(c)
	defer cancel()
	if _, err := cm.c.Get(ctx, col.Name(), id); err != nil {
		return itemErr(clusterErr(err), col, id)
	}
	seq, err := cm.c.Delete(ctx, col.Name(), id)
	if err != nil {
		return clusterErr(err)
	}
	return c.JSON(fiber.Map{"deleted": 1, "seq": seq})
}

// clusterCoverage is how much of the collection a cluster search covered.
type clusterCoverage struct {
	Shards int `json:"shards"`
	Of     int `json:"of"`
}

// clusterSearch embeds the query here (image) or takes its vector, and scatters it to every
// shard. Re-ranking, cursors, exclusions and item queries are not served in cluster mode.
func (cm *clusterMode) search(s *Server, c *fiber.Ctx, col *index.Collection) error {
	start := time.Now()
	req, err := parseSearch(c, s.cfg.Limits.MaxK, s.cfg.Limits.DefaultK)
	if err != nil {
		return err
	}
	var filter string
	if len(req.Filter) > 0 && string(req.Filter) != "null" {
		if json.Unmarshal(req.Filter, &filter) != nil {
			return errorf(http.StatusNotImplemented, "not_in_cluster_mode", "cluster search takes a filter expression string only")
		}
	}
	if req.ID != "" || req.Cursor != "" || len(req.ExcludeIDs) > 0 {
		return errorf(http.StatusNotImplemented, "not_in_cluster_mode", "cluster search takes an image or a vector, without id, cursor or exclude_ids")
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	query, timings, err := s.searchVector(ctx, col, req)
	if err != nil {
		return err
	}
	res, shards, of, err := cm.c.Search(ctx, col.Name(), query, req.K, filter)
	if err != nil {
		return clusterErr(err)
	}
	cm.searches.Inc()
	out := struct {
		Results    []resultJSON       `json:"results"`
		Collection string             `json:"collection"`
		TimingsMS  map[string]float64 `json:"timings_ms"`
		Coverage   *clusterCoverage   `json:"coverage,omitempty"`
	}{Results: make([]resultJSON, 0, len(res)), Collection: col.Name(), TimingsMS: timings}
	if shards < of {
		cm.partial.Inc()
		out.Coverage = &clusterCoverage{Shards: shards, Of: of}
	}
	for _, r := range res {
		out.Results = append(out.Results, resultJSON{ID: r.ID, Score: r.Score, Metadata: metadataOrEmpty(r.Metadata), ThumbnailURL: thumbnailURL(col.Name(), r.ID)})
	}
	timings["total"] = msf(time.Since(start))
	return c.JSON(out)
}
