package api

import (
	"context"
	"log/slog"
	"sync"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// qualityMonitor measures retrieval quality live (see the quality issue): ANN recall sampled in the
// background, precision from feedback, labelled probes and drift. This is the hook surface the
// server calls; the implementation lives in this file.
type qualityMonitor struct {
	cfg config.Config
	db  *index.DB
	log *slog.Logger
}

func newQualityMonitor(cfg config.Config, db *index.DB, reg prometheus.Registerer, log *slog.Logger) *qualityMonitor {
	return &qualityMonitor{cfg: cfg, db: db, log: log}
}

// start launches background work; it stops when ctx is done and marks wg done.
func (q *qualityMonitor) start(ctx context.Context, wg *sync.WaitGroup) {}

// observeSearch is called after every answered search, on the request path: it must not block.
func (q *qualityMonitor) observeSearch(col *index.Collection, query []float32, opts index.SearchOptions, results []index.Result) {
}

// registerRoutes adds the quality endpoints (feedback) under /v1.
func (q *qualityMonitor) registerRoutes(v1 fiber.Router, read, write fiber.Handler) {}

// summary is the "quality" object of /v1/stats; nil when there is nothing to show.
func (q *qualityMonitor) summary() map[string]any { return nil }
