package client

import (
	"context"
	"net/http"
	"time"
)

// Model is a model the server has loaded (GET /v1/models).
type Model struct {
	ID          string `json:"id"`
	File        string `json:"file"`
	SHA256      string `json:"sha256"`
	Fingerprint string `json:"fingerprint"`
	Dims        int    `json:"dims"`
	Device      string `json:"device"`
	Sessions    int    `json:"sessions"` // its engine's inference sessions: the models share one pool
	Default     bool   `json:"default"`
}

// RebuildSpec is the target of a rebuild: a model id (Models), a descriptor profile, or both; ""
// keeps the collection's model, or takes the model's configured profile.
type RebuildSpec struct {
	Model   string `json:"model,omitempty"`
	Profile string `json:"profile,omitempty"`
}

// Rebuild states (docs/lifecycle.md): a rebuild copies, is ready to switch, is switched (the
// previous generation still receives writes until GraceUntil), then done; or it failed.
const (
	RebuildLearning = "learning" // a tune learns its projection before copying
	RebuildStarting = "starting"
	RebuildCopying  = "copying"
	RebuildReady    = "ready"
	RebuildSwitched = "switched"
	RebuildDone     = "done"
	RebuildFailed   = "failed"
)

// Rebuild is a shadow rebuild of a collection into its next generation, with its progress.
type Rebuild struct {
	Collection    string    `json:"collection"` // the alias
	From          string    `json:"from"`
	To            string    `json:"to"`
	Live          string    `json:"live"` // the generation the alias names now
	Model         string    `json:"model"`
	Profile       string    `json:"profile"`
	Fingerprint   string    `json:"fingerprint"`
	Projection    string    `json:"projection,omitempty"` // the learned projection of the new generation, if any
	Tune          *Tune     `json:"tune,omitempty"`       // what a tune asked for
	Sampled       int       `json:"sampled,omitempty"`    // photos a tune has embedded to learn from
	State         string    `json:"state"`
	Total         int       `json:"total"`
	Copied        int       `json:"copied"`
	FromThumbnail int       `json:"from_thumbnail"`
	Skipped       int       `json:"skipped"`
	Mirrored      int       `json:"mirrored"`
	Pending       int       `json:"pending_changes"`
	RatePerSec    float64   `json:"rate_per_s"`
	ETASeconds    float64   `json:"eta_s"`
	StartedAt     time.Time `json:"started_at"`
	SwitchedAt    time.Time `json:"switched_at,omitzero"`
	GraceUntil    time.Time `json:"grace_until,omitzero"`
	Error         string    `json:"error,omitempty"`
}

// Tune asks for a learned projection of a collection (POST /v1/collections/{c}/tune): the zero
// value of each field is the server's default (512 dims, power 0: plain PCA, 2000 photos); Off
// turns the projection off instead.
type Tune struct {
	Dims   int     `json:"dims,omitempty"`
	Power  float64 `json:"power,omitempty"`
	Sample int     `json:"sample,omitempty"`
	Off    bool    `json:"-"`
}

// StartTune learns a projection from collection's own photos and rebuilds it into the next
// generation with it (a Rebuild in state learning, then as any rebuild).
func (c *Client) StartTune(ctx context.Context, collection string, t Tune) (*Rebuild, error) {
	var body any = t
	if t.Off {
		body = map[string]string{"projection": "none"}
	}
	r, err := jsonRequest(http.MethodPost, collectionPath(collection, "/tune"), body)
	if err != nil {
		return nil, err
	}
	return c.rebuild(ctx, r)
}

// Quantiles summarise a distribution.
type Quantiles struct {
	P10 float64 `json:"p10"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
}

// ProbeScore is one probe set's precision@k and hit rate on one generation.
type ProbeScore struct {
	Probes    int     `json:"probes"`
	K         int     `json:"k"`
	Precision float64 `json:"precision_at_k"`
	HitRate   float64 `json:"hit_rate_at_k"`
}

// RebuildArm is one generation's side of a RebuildReport.
type RebuildArm struct {
	Collection string    `json:"collection"`
	Generation int       `json:"generation"`
	Model      string    `json:"model"`
	Count      int       `json:"count"`
	Queries    int       `json:"queries"`
	TopScore   Quantiles `json:"top_score"`
	LatencyMS  Quantiles `json:"latency_ms"`
	// Probes are the probe sets' results (quality.probes) when the collection is the probed one.
	Probes         map[string]ProbeScore `json:"probes,omitempty"`
	ProbePrecision *float64              `json:"probe_precision,omitempty"`
}

// RebuildReport compares the live generation with the other one of a rebuild.
type RebuildReport struct {
	Rebuild   Rebuild    `json:"rebuild"`
	Live      RebuildArm `json:"live"`
	Shadow    RebuildArm `json:"shadow"`
	Overlap10 float64    `json:"overlap_at_10"`
	Queries   int        `json:"queries"`
}

// Models lists the models the server has loaded.
func (c *Client) Models(ctx context.Context) ([]Model, error) {
	var out struct {
		Models []Model `json:"models"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/models"}, &out)
	return out.Models, err
}

// StartRebuild starts a shadow rebuild of collection into its next generation.
func (c *Client) StartRebuild(ctx context.Context, collection string, spec RebuildSpec) (*Rebuild, error) {
	r, err := jsonRequest(http.MethodPost, collectionPath(collection, "/rebuild"), spec)
	if err != nil {
		return nil, err
	}
	return c.rebuild(ctx, r)
}

// RebuildStatus is the collection's rebuild with its progress (404 no_rebuild when none).
func (c *Client) RebuildStatus(ctx context.Context, collection string) (*Rebuild, error) {
	return c.rebuild(ctx, request{method: http.MethodGet, path: collectionPath(collection, "/rebuild")})
}

// RebuildReport compares the live and the other generation of the collection's rebuild.
func (c *Client) RebuildReport(ctx context.Context, collection string) (*RebuildReport, error) {
	var out RebuildReport
	if _, err := c.do(ctx, request{method: http.MethodGet, path: collectionPath(collection, "/rebuild/report")}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Switch points the collection's alias at the rebuilt generation (the rebuild must be ready).
func (c *Client) Switch(ctx context.Context, collection string) (*Rebuild, error) {
	return c.rebuild(ctx, request{method: http.MethodPost, path: collectionPath(collection, "/switch")})
}

// Rollback points the alias back at the previous generation, during the grace period.
func (c *Client) Rollback(ctx context.Context, collection string) (*Rebuild, error) {
	return c.rebuild(ctx, request{method: http.MethodPost, path: collectionPath(collection, "/rollback")})
}

func (c *Client) rebuild(ctx context.Context, r request) (*Rebuild, error) {
	var out Rebuild
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
