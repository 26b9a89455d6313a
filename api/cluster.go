package api

// HTTP front of cluster mode (docs/cluster.md): with a Cluster set, item writes go through the
// replicated log and searches scatter to every shard. api knows only this interface; cmd wires
// the cluster package's node into it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/edit"
	"github.com/lookalike/lookalike/internal/ingest"
)

// ErrClusterUnavailable is what a Cluster returns when the log has no quorum (or no shard
// answered a search): the API answers 503 cluster_unavailable.
var ErrClusterUnavailable = errors.New("cluster unavailable")

// ErrClusterNotCaughtUp is what a Cluster returns when a read's min_seq was not reached by the
// replicas that answer within the wait (cluster.MinSeqWait): the API answers 503 not_caught_up.
var ErrClusterNotCaughtUp = errors.New("cluster replicas not caught up")

// ClusterRead qualifies a read of one item.
type ClusterRead struct {
	// MinSeq: read from a replica that applied the log up to it (a write's seq; 0: any).
	MinSeq uint64
	// Thumbnail, Source: also fetch the item's renditions.
	Thumbnail, Source bool
}

// ClusterQuery is a search of a whole collection.
type ClusterQuery struct {
	Vector []float32
	K, Ef  int
	// Filter is a metadata filter expression (index.ParseFilter syntax).
	Filter string
	// ExcludeIDs are left out by every shard before its top K is cut.
	ExcludeIDs []string
	// Exact asks every shard for a brute-force search.
	Exact  bool
	MinSeq uint64
}

// Cluster is what cluster mode needs from the cluster: writes acknowledged by the replicated log
// (the returned sequence), reads from this node's replicas, and scatter-gather searches.
type Cluster interface {
	// Upsert stores it (ID, Vector, Metadata, Thumbnail, ContentHash, IfVersion) in collection.
	Upsert(ctx context.Context, collection string, it index.Item) (seq uint64, err error)
	// Patch applies a metadata merge patch (RFC 7386) to the item, on every replica, when
	// ifVersion (0: none) still matches there.
	Patch(ctx context.Context, collection, id string, patch json.RawMessage, ifVersion uint64) (seq uint64, err error)
	// Delete deletes the item (when ifVersion, 0: none, still matches).
	Delete(ctx context.Context, collection, id string, ifVersion uint64) (seq uint64, err error)
	// Get reads the item from a replica of its shard, this node's or another's
	// (index.ErrNotFound when absent).
	Get(ctx context.Context, collection, id string, o ClusterRead) (index.Item, error)
	// Search asks every shard of collection for its top k and merges them; shards of of answered.
	Search(ctx context.Context, collection string, q ClusterQuery) (res []index.Result, shards, of int, err error)
	// List lists (or counts) the items of collection over every shard; index.ErrNotFound when the
	// cluster does not serve collection.
	List(ctx context.Context, collection string, q ClusterList) (ClusterPage, error)
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
	{http.MethodPost, regexp.MustCompile(`^/v1/collections/[^/]+/(search|recommend)(:batch)?$`)},
	{http.MethodPost, regexp.MustCompile(`^/v1/collections/[^/]+/similar:batch$`)},
	{http.MethodGet, regexp.MustCompile(`^/v1/collections/[^/]+/search/explain$`)},
	{http.MethodPost, regexp.MustCompile(`^/v1/collections/[^/]+/search/explain$`)},
	{http.MethodPatch, regexp.MustCompile(`^/v1/collections/[^/]+/items/[^/]+$`)},
	{http.MethodPost, regexp.MustCompile(`^/v1/collections/[^/]+/items:batch$`)},
	{http.MethodGet, regexp.MustCompile(`^/v1/collections/[^/]+/items/[^/]+/(thumbnail|source|similar)$`)},
	{http.MethodGet, regexp.MustCompile(`^/v1/collections/[^/]+/items(:count)?$`)},
	{http.MethodGet, regexp.MustCompile(`^/v1/collections$`)},
	{http.MethodGet, clusterCollectionPath},
	{http.MethodGet, regexp.MustCompile(`^/v1/stats$`)},
	{http.MethodGet, regexp.MustCompile(`^/v1/collections/[^/]+/fields$`)},
	// This node's own: kept query photos, search feedback (its quality window), rebuild jobs (none).
	{http.MethodGet, regexp.MustCompile(`^/v1/photos/[^/]+$`)},
	{http.MethodPost, regexp.MustCompile(`^/v1/collections/[^/]+/feedback$`)},
	{http.MethodGet, regexp.MustCompile(`^/v1/rebuilds$`)},
}

var clusterCollectionPath = regexp.MustCompile(`^/v1/collections/[^/]+$`)

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
	return notServedInCluster(c)
}

func clusterErr(err error) error {
	code := ""
	switch {
	case errors.Is(err, ErrClusterNotCaughtUp):
		code = "not_caught_up"
	case errors.Is(err, ErrClusterUnavailable):
		code = "cluster_unavailable"
	default:
		return err
	}
	e := errorf(http.StatusServiceUnavailable, code, "%v", err)
	e.RetryAfter = 1 // like every 503 of the API; an election takes about 5 s
	return e
}

// minSeq reads the min_seq query parameter (0 when absent).
func minSeq(c *fiber.Ctx) (uint64, error) {
	v := c.Query("min_seq")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, invalidQuery("min_seq", "min_seq must be a log sequence (an integer >= 0), got %q", v)
	}
	return n, nil
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
	seq, err := cm.publishItem(ctx, s, col, in[0])
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(fiber.Map{"id": in[0].ID, "seq": seq, "metadata": metadataOrEmpty(in[0].Metadata),
		"thumbnail_url": thumbnailURL(col.Name(), in[0].ID)})
}

// publishItem embeds one photo and makes its thumbnail and source rendition here, and publishes
// the item.
func (cm *clusterMode) publishItem(ctx context.Context, s *Server, col *index.Collection, in ingest.Input) (uint64, error) {
	embs, err := s.embedAdmitted(ctx, col, embed.Image{Data: in.Image})
	if err != nil {
		return 0, err
	}
	thumb, err := embed.Thumbnail(in.Image, s.cfg.Limits.ThumbnailSize, s.cfg.Limits.ThumbnailQuality, s.cfg.Limits.MaxPixels)
	if err != nil {
		return 0, err
	}
	// Travels inline in the mutation, as the thumbnail does: what re-embedding the catalog reads.
	source, err := ingest.SourceRendition(in.Image, s.ingestPolicy(""))
	if err != nil {
		return 0, fmt.Errorf("source rendition: %w", err)
	}
	it := index.Item{ID: in.ID, Vector: embs[0].Vector, Metadata: in.Metadata, Thumbnail: thumb, Source: source,
		ContentHash: ingest.ContentID(in.Image), UpdatedAt: time.Now().UTC(), IfVersion: in.IfVersion}
	seq, err := cm.c.Upsert(ctx, col.Name(), it)
	return seq, clusterErr(err)
}

// batch adds the items of a batch (the single node's items:batch body; todo are the items whose
// id was settled, pos their lines in out) through the log, one at a time: each line answers 201
// with its seq, or its own error; one bad item never fails the others.
func (cm *clusterMode) batch(s *Server, c *fiber.Ctx, col *index.Collection, out []batchLine, pos []int, todo []ingest.Input) error {
	ctx, cancel := s.requestContext(c)
	defer cancel()
	for i, in := range todo {
		line := &out[pos[i]]
		seq, err := cm.publishItem(ctx, s, col, in)
		if err != nil {
			line.setError(s.classifyLogged(c, err))
			continue
		}
		line.Seq, line.Status = seq, http.StatusCreated
	}
	return writeBatch(c, out)
}

// read reads one item (with the renditions o asks for) from a replica of its shard, honouring
// the min_seq query parameter.
func (cm *clusterMode) read(s *Server, c *fiber.Ctx, col *index.Collection, id string, o ClusterRead) (index.Item, error) {
	var err error
	if o.MinSeq, err = minSeq(c); err != nil {
		return index.Item{}, err
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	it, err := cm.c.Get(ctx, col.Name(), id, o)
	if err != nil {
		return it, itemErr(clusterErr(err), col, id)
	}
	return it, nil
}

func (cm *clusterMode) get(s *Server, c *fiber.Ctx, col *index.Collection, id string) error {
	withVector, err := queryBool(c, "with_vector")
	if err != nil {
		return err
	}
	it, err := cm.read(s, c, col, id, ClusterRead{})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderETag, etag(it.Version))
	out := itemDetailJSON{itemJSON: itemJSON{ID: it.ID, Version: it.Version, Metadata: metadataOrEmpty(it.Metadata), ThumbnailURL: thumbnailURL(col.Name(), it.ID),
		Fingerprint: col.Fingerprint(), Dims: len(it.Vector), UpdatedAt: it.UpdatedAt}, Labels: []labelJSON{}}
	if withVector {
		out.Vector = it.Vector
	}
	return c.JSON(out)
}

// image sends the item's thumbnail, or its source rendition (the thumbnail when it has none).
func (cm *clusterMode) image(s *Server, c *fiber.Ctx, col *index.Collection, id string, source bool) error {
	it, err := cm.read(s, c, col, id, ClusterRead{Thumbnail: true, Source: source})
	if err != nil {
		return err
	}
	img := it.Thumbnail
	if source {
		rendition := "source"
		if len(it.Source) > 0 {
			img = it.Source
		} else {
			rendition = "thumbnail"
		}
		c.Set("X-Rendition", rendition)
	}
	if len(img) == 0 {
		return itemErr(index.ErrNotFound, col, id)
	}
	c.Set(fiber.HeaderContentType, "image/jpeg")
	c.Set(fiber.HeaderCacheControl, "private, max-age=60")
	return c.Send(img)
}

func (cm *clusterMode) delete(s *Server, c *fiber.Ctx, col *index.Collection, id string) error {
	if _, err := cm.read(s, c, col, id, ClusterRead{}); err != nil {
		return err
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	seq, err := cm.c.Delete(ctx, col.Name(), id, 0)
	if err != nil {
		return clusterErr(err)
	}
	return c.JSON(fiber.Map{"deleted": 1, "seq": seq})
}

// patch publishes a metadata merge patch. The precondition and the patch are checked here
// against the item as a replica holds it (so that a stale If-Match answers 412 at once), and
// decided again when each replica applies it (the same way on every one). The answer is the
// item as a replica holds it once the patch applied.
func (cm *clusterMode) patch(s *Server, c *fiber.Ctx, col *index.Collection, id string) error {
	req, err := s.parsePatch(c)
	if err != nil {
		return err
	}
	patch := req.metadata
	if patch == nil {
		patch = json.RawMessage("{}")
	}
	cur, err := cm.read(s, c, col, id, ClusterRead{})
	if err != nil {
		return err
	}
	if req.ifVersion != 0 && cur.Version != req.ifVersion {
		return itemErr(fmt.Errorf("%w: item %q is at version %d, not %d", index.ErrVersionConflict, id, cur.Version, req.ifVersion), col, id)
	}
	meta, err := edit.PatchMetadata(cur.Metadata, patch, s.editOptions())
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	outcome, it, out := "unchanged", cur, fiber.Map{}
	if !bytes.Equal(meta, cur.Metadata) {
		seq, err := cm.c.Patch(ctx, col.Name(), id, patch, req.ifVersion)
		if err != nil {
			return clusterErr(err)
		}
		if it, err = cm.c.Get(ctx, col.Name(), id, ClusterRead{MinSeq: seq}); err != nil {
			return itemErr(clusterErr(err), col, id)
		}
		outcome, out["seq"] = "updated", seq
	}
	c.Set(fiber.HeaderETag, etag(it.Version))
	out["outcome"], out["item"] = outcome, itemJSON{ID: it.ID, Version: it.Version, Metadata: metadataOrEmpty(it.Metadata),
		ThumbnailURL: thumbnailURL(col.Name(), it.ID), Fingerprint: col.Fingerprint(), Dims: col.Config().Dims, UpdatedAt: it.UpdatedAt}
	return c.JSON(out)
}

// clusterCoverage is how much of the collection a cluster search covered.
type clusterCoverage struct {
	Shards int `json:"shards"`
	Of     int `json:"of"`
}

// clusterQuery takes what a cluster search serves from req: k, ef, a filter, min_seq (the JSON field or form value, else the query parameter).
func clusterQuery(c *fiber.Ctx, req *searchRequest) (ClusterQuery, error) {
	q := ClusterQuery{K: req.K, Ef: req.Ef, MinSeq: req.MinSeq}
	// An expression or a JSON object, as on a single node; the shards get it as an expression.
	f, err := parseFilter(req.Filter)
	if err != nil {
		return q, err
	}
	q.Filter = f.String()
	if q.MinSeq == 0 {
		if q.MinSeq, err = minSeq(c); err != nil {
			return q, err
		}
	}
	return q, nil
}
