package api

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/lifecycle"
)

// Model and index lifecycle (docs/lifecycle.md): the engines by model, the rebuild routes, and the
// recent real queries the comparison report replays.

// AddEngine makes another model available to collections and rebuilds (config models:). Call it
// before serving.
func (s *Server) AddEngine(eng Embedder) {
	s.engMu.Lock()
	defer s.engMu.Unlock()
	s.engines[eng.Info().Fingerprint] = eng
}

// engineFor is the engine whose vectors have fingerprint fp, bound to the descriptor profile that
// fp names and to the learned projection it names, if any (lifecycle.WithFingerprint): every
// embedding for a collection, its photos and its queries alike, goes through it.
func (s *Server) engineFor(fp string) (Embedder, bool) {
	s.engMu.RLock()
	defer s.engMu.RUnlock()
	if e, ok := s.engines[fp]; ok {
		return e, true
	}
	for _, e := range s.engines {
		if pe, ok := lifecycle.WithFingerprint(e, fp, s.projections); ok {
			return pe, true
		}
	}
	return nil, false
}

func (s *Server) lifecycleEngine(fp string) (lifecycle.Embedder, bool) { return s.engineFor(fp) }

// lifecycleProbes scores the quality probe sets on a generation for the rebuild report.
func (s *Server) lifecycleProbes(ctx context.Context, col *index.Collection, eng lifecycle.Embedder) (map[string]lifecycle.ProbeScore, error) {
	scores, err := s.quality.ScoreProbes(ctx, col, eng)
	if err != nil || scores == nil {
		return nil, err
	}
	out := make(map[string]lifecycle.ProbeScore, len(scores))
	for name, sc := range scores {
		out[name] = lifecycle.ProbeScore(sc)
	}
	return out, nil
}

// engineOf is the engine of col's model, the server's own when none matches (embeddable refused
// such a collection before any embedding).
func (s *Server) engineOf(col *index.Collection) Embedder {
	if e, ok := s.engineFor(col.Fingerprint()); ok {
		return e
	}
	return s.eng
}

func (s *Server) registerLifecycleRoutes(v1 fiber.Router, read, write fiber.Handler) {
	v1.Get("/models", read, s.handleModels)
	v1.Get("/rebuilds", read, s.handleListRebuilds)
	v1.Post("/collections/:c/rebuild", write, s.handleRebuild)
	v1.Get("/collections/:c/rebuild", read, s.handleRebuildStatus)
	v1.Get("/collections/:c/rebuild/report", read, s.handleRebuildReport)
	v1.Post("/collections/:c/tune", write, s.handleTune)
	v1.Post("/collections/:c/switch", write, s.handleSwitch)
	v1.Post("/collections/:c/rollback", write, s.handleRollback)
}

type modelJSON struct {
	ID          string `json:"id"`
	File        string `json:"file"`
	SHA256      string `json:"sha256"`
	Fingerprint string `json:"fingerprint"`
	Dims        int    `json:"dims"`
	Device      string `json:"device"`
	Sessions    int    `json:"sessions"`
	InputSize   int    `json:"input_size"`
	Resize      int    `json:"resize_shorter"`
	Crop        string `json:"crop"`
	Default     bool   `json:"default"`
}

func (s *Server) handleModels(c *fiber.Ctx) error {
	s.engMu.RLock()
	out := make([]modelJSON, 0, len(s.engines))
	for _, e := range s.engines {
		in := e.Info()
		out = append(out, modelJSON{ID: in.ModelID, File: in.Spec.File, SHA256: in.Spec.SHA256, Fingerprint: in.Fingerprint,
			Dims: in.Dims, Device: in.Device, Sessions: in.Workers, InputSize: in.Spec.InputSize, Resize: in.Spec.ResizeShorter, Crop: in.Spec.Crop,
			Default: in.Fingerprint == s.eng.Info().Fingerprint})
	}
	s.engMu.RUnlock()
	slices.SortFunc(out, func(a, b modelJSON) int {
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	return c.JSON(fiber.Map{"models": out})
}

// rebuildBase is the base name of the {c} parameter (an alias or any of its generations).
func (s *Server) rebuildBase(c *fiber.Ctx) (string, error) {
	col, err := s.collection(c)
	if err != nil {
		return "", err
	}
	base, _ := index.ParseGeneration(col.Name())
	return base, nil
}

func (s *Server) handleRebuild(c *fiber.Ctx) error {
	col, err := s.collection(c)
	if err != nil {
		return err
	}
	base, _ := index.ParseGeneration(col.Name())
	var req struct {
		Model   string `json:"model"`
		Profile string `json:"profile"`
	}
	if err := decodeJSONBody(c.Body(), &req); err != nil {
		return err
	}
	eng, err := s.rebuildEngine(col, req.Model, req.Profile)
	if err != nil {
		return err
	}
	j, err := s.lifecycle.Rebuild(base, eng)
	if err != nil {
		return err
	}
	return c.Status(http.StatusAccepted).JSON(j)
}

// rebuildEngine is the engine a rebuild of col makes its vectors with (lifecycle.Target): at least
// one of model and profile is named.
func (s *Server) rebuildEngine(col *index.Collection, model, profile string) (lifecycle.Embedder, error) {
	if model == "" && profile == "" {
		return nil, badRequest("name the target: model (GET /v1/models), profile, or both").with("parameter", "model")
	}
	s.engMu.RLock()
	engines := make([]lifecycle.Embedder, 0, len(s.engines))
	for _, e := range s.engines {
		engines = append(engines, e)
	}
	s.engMu.RUnlock()
	eng, err := lifecycle.Target(engines, col.Fingerprint(), model, profile)
	switch {
	case errors.Is(err, lifecycle.ErrUnknownModel):
		return nil, errorf(http.StatusBadRequest, "unknown_model", "%s (GET /v1/models)", err).with("parameter", "model")
	case err != nil:
		return nil, errorf(http.StatusBadRequest, "invalid_profile", "%s", err).with("parameter", "profile")
	}
	return eng, nil
}

func (s *Server) handleRebuildStatus(c *fiber.Ctx) error {
	base, err := s.rebuildBase(c)
	if err != nil {
		return err
	}
	j, err := s.lifecycle.Status(base)
	if err != nil {
		return err
	}
	return c.JSON(j)
}

func (s *Server) handleListRebuilds(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"rebuilds": s.lifecycle.Jobs(), "aliases": s.db.Aliases()})
}

func (s *Server) handleRebuildReport(c *fiber.Ctx) error {
	base, err := s.rebuildBase(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	rep, err := s.lifecycle.Compare(ctx, base, s.lifecycleQueries.sample())
	if err != nil {
		return err
	}
	return c.JSON(rep)
}

func (s *Server) handleSwitch(c *fiber.Ctx) error {
	return s.flipAlias(c, s.lifecycle.Switch)
}

func (s *Server) handleRollback(c *fiber.Ctx) error {
	return s.flipAlias(c, s.lifecycle.Rollback)
}

func (s *Server) flipAlias(c *fiber.Ctx, op func(ctx context.Context, base string) (lifecycle.Job, error)) error {
	base, err := s.rebuildBase(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.requestContext(c)
	defer cancel()
	j, err := op(ctx, base)
	if err != nil {
		return err
	}
	return c.JSON(j)
}

// canary routes a share of searches by photo or item on an alias (lifecycle.canary_share) to the
// generation a rebuild has made ready, and marks the request; col itself otherwise. A request that
// names a generation, pages on (cursor), or searches by raw vector (another model's space) stays,
// as does one by an item the shadow does not hold yet (the mirror lags by a moment).
func (s *Server) canary(col *index.Collection, req *searchRequest) *index.Collection {
	share := s.cfg.Lifecycle.CanaryShare
	if share <= 0 || req.offset > 0 || (req.Image == nil && req.ID == "") {
		return col
	}
	base, _ := index.ParseGeneration(col.Name())
	if s.db.Target(base) != col.Name() {
		return col
	}
	name, ok := s.lifecycle.Shadow(base)
	if !ok || rand.Float64() >= share {
		return col
	}
	shadow, err := s.db.Collection(name)
	if err != nil {
		return col
	}
	if _, ok := s.engineFor(shadow.Fingerprint()); !ok {
		return col
	}
	if req.ID != "" {
		if _, err := shadow.Get(req.ID); err != nil {
			return col
		}
	}
	req.canary = true
	return shadow
}

// observeArm records a search's latency and best score by arm: the alias's generation (live) or
// another one (shadow: the canary, or a generation named directly).
func (s *Server) observeArm(col *index.Collection, res []index.Result, total time.Duration) {
	arm := armLive
	if base, _ := index.ParseGeneration(col.Name()); s.db.Target(base) != col.Name() {
		arm = armShadow
	}
	s.metrics.armLatency.WithLabelValues(arm).Observe(total.Seconds())
	if len(res) > 0 {
		s.metrics.armTopScore.WithLabelValues(arm).Observe(float64(res[0].Score))
	}
}

// recentQueries keeps the last query photos (bounded count and size) for the comparison report.
type recentQueries struct {
	mu   sync.Mutex
	imgs [][]byte
	next int
}

const (
	recentQueryCount = 32
	recentQueryBytes = 1 << 20
)

func (q *recentQueries) add(img []byte) {
	if len(img) > recentQueryBytes {
		return
	}
	cp := slices.Clone(img) // fiber reuses the request buffer
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.imgs) < recentQueryCount {
		q.imgs = append(q.imgs, cp)
		return
	}
	q.imgs[q.next] = cp
	q.next = (q.next + 1) % recentQueryCount
}

func (q *recentQueries) sample() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.imgs)
}
