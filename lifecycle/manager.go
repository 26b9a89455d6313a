package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/guard"
)

// Embedder is what a rebuild needs of an engine (*embed.Engine).
type Embedder interface {
	Embed(ctx context.Context, imgs []embed.Image) ([]embed.Embedding, error)
	Info() embed.Info
}

// Options configure a Manager. Zero values mean the documented defaults.
type Options struct {
	// Engine returns the engine whose vectors have this fingerprint, false when none is loaded.
	Engine func(fingerprint string) (Embedder, bool)
	// Admit takes an inference slot without waiting (false when none is free), so a rebuild only
	// embeds when live traffic leaves the engine idle; nil admits always.
	Admit func() (release func(), ok bool)
	// Source returns an item's stored source rendition; nil, or false, means the thumbnail is used.
	Source func(col *index.Collection, id string) ([]byte, bool)
	// Probes scores the labelled probe sets on a generation with the engine that makes its vectors,
	// for the comparison report; nil, or an empty answer, leaves them out.
	Probes func(ctx context.Context, col *index.Collection, eng Embedder) (map[string]ProbeScore, error)
	// Batch is how many items are embedded and written at once; default 16.
	Batch int
	// Grace is how long the previous generation keeps receiving writes after a switch, so that a
	// rollback loses nothing; default 24h.
	Grace time.Duration
	// Projections stores the projections tunes learn (and Engine resolves projected fingerprints
	// with); nil makes one on the DB.
	Projections *Projections
	// Logger defaults to a discard logger.
	Logger *slog.Logger
}

// Job states (docs/lifecycle.md).
const (
	StateLearning = "learning" // a tune learns its projection before the rebuild starts (tune.go)
	StateStarting = "starting"
	StateCopying  = "copying"
	StateReady    = "ready"
	StateSwitched = "switched"
	StateDone     = "done"
	StateFailed   = "failed"
)

// Job is a rebuild as persisted and reported.
type Job struct {
	Base          string    `json:"collection"`
	From          string    `json:"from"`
	To            string    `json:"to"`
	Model         string    `json:"model"`
	Profile       string    `json:"profile"`
	Fingerprint   string    `json:"fingerprint"`
	State         string    `json:"state"`
	Live          string    `json:"live"`
	Cursor        string    `json:"cursor,omitempty"`
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

	// Projection names the learned projection of the target ("" = none); Tune holds what a tune
	// asked for, Sampled how many photos it has embedded to learn from (tune.go).
	Projection string       `json:"projection,omitempty"`
	Tune       *TuneOptions `json:"tune,omitempty"`
	Sampled    int          `json:"sampled,omitempty"`
}

func stateKey(base string) string { return "rebuild/" + base }

// Manager runs rebuilds of the collections of one DB.
type Manager struct {
	db   *index.DB
	opts Options
	log  *slog.Logger

	mu   sync.Mutex
	jobs map[string]*run // by base name

	ctx context.Context
	wg  *sync.WaitGroup
}

// run is one job in memory; its goroutine is the only writer of its generations' mirror.
type run struct {
	mu      sync.Mutex // guards job
	job     Job
	opMu    sync.Mutex // one of copy step, mirror step, switch, rollback at a time
	started time.Time
	copied0 int
}

func (r *run) snapshot() Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.job
}

// New makes a manager; Start resumes its persisted jobs.
func New(db *index.DB, o Options) *Manager {
	if o.Batch <= 0 {
		o.Batch = 16
	}
	if o.Grace <= 0 {
		o.Grace = 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Admit == nil {
		o.Admit = func() (func(), bool) { return func() {}, true }
	}
	if o.Projections == nil {
		o.Projections = NewProjections(db)
	}
	return &Manager{db: db, opts: o, log: o.Logger, jobs: map[string]*run{}}
}

// Start resumes every persisted job that is not done; their goroutines stop when ctx ends and
// are counted in wg.
func (m *Manager) Start(ctx context.Context, wg *sync.WaitGroup) {
	m.mu.Lock()
	m.ctx, m.wg = ctx, wg
	m.mu.Unlock()
	for key, raw := range m.db.States("rebuild/") {
		var j Job
		if err := json.Unmarshal(raw, &j); err != nil {
			m.log.Error("rebuild: unreadable job record", "key", key, "err", err)
			continue
		}
		// A crash between the alias write and the job's save leaves the alias authoritative.
		if t := m.db.Target(j.Base); t != j.Live && (t == j.From || t == j.To) && j.State != StateDone && j.State != StateFailed {
			j.Live = t
			if t == j.To {
				j.State, j.SwitchedAt, j.GraceUntil = StateSwitched, time.Now().UTC(), time.Now().UTC().Add(m.opts.Grace)
			} else {
				j.State = StateReady
			}
		}
		r := &run{job: j}
		m.mu.Lock()
		m.jobs[j.Base] = r
		m.mu.Unlock()
		if j.State != StateDone && j.State != StateFailed {
			m.log.Info("rebuild: resuming", "collection", j.Base, "state", j.State, "copied", j.Copied, "cursor", j.Cursor)
			m.launch(r)
		}
	}
}

func (m *Manager) launch(r *run) {
	r.started, r.copied0 = time.Now(), r.snapshot().Copied
	guard.Go(m.ctx, m.wg, m.log, "rebuild "+r.job.Base, func(ctx context.Context) { m.loop(ctx, r) })
}

// Rebuild starts building the next generation of base with the engine eng (bound to the target
// profile: WithProfile). ErrRunning when a job of base is not done yet, ErrSameVectors when eng
// makes the vectors the live generation holds.
func (m *Manager) Rebuild(base string, eng Embedder) (Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	live, err := m.idle(base)
	if err != nil {
		return Job{}, err
	}
	return m.begin(live, eng, nil)
}

// idle returns the live generation of base when no job of base is under way (ErrRunning); m.mu is
// held.
func (m *Manager) idle(base string) (*index.Collection, error) {
	if m.ctx == nil {
		return nil, fmt.Errorf("%w: manager not started", ErrNotReady)
	}
	if r, ok := m.jobs[base]; ok {
		if s := r.snapshot().State; s != StateDone && s != StateFailed {
			return nil, fmt.Errorf("%w: %s is %s", ErrRunning, base, s)
		}
	}
	return m.db.Collection(m.db.Target(base))
}

// begin persists and launches a job from live into the next generation, made by eng: a rebuild
// (tune nil: the shadow is prepared now) or a tune, whose target eng makes the unprojected vectors
// the projection is learned from (the shadow is prepared once it is learned). m.mu is held.
func (m *Manager) begin(live *index.Collection, eng Embedder, tune *TuneOptions) (Job, error) {
	base, _ := index.ParseGeneration(live.Name())
	info := eng.Info()
	if tune == nil && info.Fingerprint == live.Fingerprint() {
		return Job{}, fmt.Errorf("%w: %s already holds vectors of %s (model %s, profile %s)", ErrSameVectors, live.Name(), info.Fingerprint, info.ModelID, info.Profile)
	}
	gen := m.nextGeneration(base)
	j := Job{Base: base, From: live.Name(), To: index.GenerationName(base, gen), Live: live.Name(), Model: info.ModelID,
		Profile: info.Profile, Fingerprint: info.Fingerprint, Projection: info.Projection, State: StateStarting, Total: live.Info().Count, StartedAt: time.Now().UTC()}
	if tune != nil {
		j.State, j.Tune, j.Fingerprint = StateLearning, tune, ""
	}
	r := &run{job: j}
	if err := m.save(r); err != nil {
		return Job{}, err
	}
	if tune == nil {
		if err := m.prepare(r); err != nil {
			return Job{}, err
		}
	}
	m.jobs[base] = r
	m.launch(r)
	return r.snapshot(), nil
}

// nextGeneration is one above the highest generation of base in the DB.
func (m *Manager) nextGeneration(base string) int {
	top := 1
	for _, ci := range m.db.Collections() {
		if b, g := index.ParseGeneration(ci.Name); b == base && g > top {
			top = g
		}
	}
	return top + 1
}

// prepare creates the shadow and turns tracking on (idempotent: resuming a starting job repeats it).
func (m *Manager) prepare(r *run) error {
	j := r.snapshot()
	live, err := m.db.Collection(j.From)
	if err != nil {
		return err
	}
	eng, ok := m.opts.Engine(j.Fingerprint)
	if !ok {
		return fmt.Errorf("%w: no engine for fingerprint %s", ErrUnknownModel, j.Fingerprint)
	}
	_, gen := index.ParseGeneration(j.To)
	cfg := live.Config()
	cfg.Fingerprint, cfg.Dims = j.Fingerprint, eng.Info().Dims
	if _, err := m.db.CreateGeneration(j.Base, gen, cfg); err != nil && !errors.Is(err, index.ErrExists) {
		return fmt.Errorf("create %s: %w", j.To, err)
	}
	if err := live.Track(true); err != nil {
		return err
	}
	r.mu.Lock()
	r.job.State = StateCopying
	r.mu.Unlock()
	return m.save(r)
}

// save persists the job (durable when it returns).
func (m *Manager) save(r *run) error {
	j := r.snapshot()
	raw, _ := json.Marshal(j)
	return m.db.SetState(stateKey(j.Base), raw)
}

// Status reports the job of base, with its live progress figures.
func (m *Manager) Status(base string) (Job, error) {
	m.mu.Lock()
	r, ok := m.jobs[base]
	m.mu.Unlock()
	if !ok {
		return Job{}, fmt.Errorf("%w: collection %q", ErrNoJob, base)
	}
	j := r.snapshot()
	if src, err := m.db.Collection(j.Live); err == nil && j.State != StateDone {
		_, j.Pending, _ = src.Changes(0)
	}
	if el := time.Since(r.started).Seconds(); el > 0 && j.State == StateCopying {
		j.RatePerSec = float64(j.Copied-r.copied0) / el
		if j.RatePerSec > 0 {
			j.ETASeconds = float64(max(j.Total-j.Copied, 0)) / j.RatePerSec
		}
	}
	return j, nil
}

// Shadow names the generation a rebuild of base has made ready and not switched to yet: the
// canary's arm (false while copying, after a switch, or with no rebuild).
func (m *Manager) Shadow(base string) (string, bool) {
	r, err := m.get(base)
	if err != nil {
		return "", false
	}
	j := r.snapshot()
	return j.To, j.State == StateReady && j.Live == j.From
}

// Jobs lists every known job.
func (m *Manager) Jobs() []Job {
	m.mu.Lock()
	bases := make([]string, 0, len(m.jobs))
	for b := range m.jobs {
		bases = append(bases, b)
	}
	m.mu.Unlock()
	out := make([]Job, 0, len(bases))
	for _, b := range bases {
		if j, err := m.Status(b); err == nil {
			out = append(out, j)
		}
	}
	return out
}

func (m *Manager) get(base string) (*run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.jobs[base]
	if !ok {
		return nil, fmt.Errorf("%w: collection %q", ErrNoJob, base)
	}
	return r, nil
}

// loop is a job's goroutine: copy, keep the other generation current, end the grace period.
func (m *Manager) loop(ctx context.Context, r *run) {
	if r.snapshot().State == StateLearning {
		if err := m.learn(ctx, r); err != nil {
			if ctx.Err() == nil {
				m.fail(r, err)
			}
			return
		}
	}
	if r.snapshot().State == StateStarting {
		if err := m.prepare(r); err != nil {
			m.fail(r, err)
			return
		}
	}
	for ctx.Err() == nil {
		busy, err := m.step(ctx, r)
		if err != nil && ctx.Err() == nil {
			if errors.Is(err, index.ErrDropped) || errors.Is(err, index.ErrNotFound) && !strings.Contains(err.Error(), "item") {
				m.fail(r, err)
				return
			}
			m.log.Warn("rebuild: step failed; retrying", "collection", r.job.Base, "err", err)
			busy = false
		}
		if r.snapshot().State == StateDone {
			return
		}
		if !busy {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func (m *Manager) fail(r *run, err error) {
	m.log.Error("rebuild failed", "collection", r.job.Base, "err", err)
	r.mu.Lock()
	r.job.State, r.job.Error = StateFailed, err.Error()
	r.mu.Unlock()
	_ = m.save(r)
}

// step does one unit of work; busy says whether there may be more right away.
func (m *Manager) step(ctx context.Context, r *run) (busy bool, err error) {
	r.opMu.Lock()
	defer r.opMu.Unlock()
	j := r.snapshot()
	if j.State == StateCopying {
		return true, m.copyBatch(ctx, r)
	}
	if j.State == StateSwitched && time.Now().After(j.GraceUntil) {
		return false, m.endGrace(r)
	}
	n, err := m.mirror(ctx, r, m.opts.Batch)
	return n > 0, err
}

// endGrace stops mirroring into the previous generation: rollback is no longer lossless.
func (m *Manager) endGrace(r *run) error {
	j := r.snapshot()
	if src, err := m.db.Collection(j.Live); err == nil {
		if err := src.Track(false); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.job.State = StateDone
	r.mu.Unlock()
	m.log.Info("rebuild: grace period over", "collection", j.Base, "live", j.Live)
	return m.save(r)
}
