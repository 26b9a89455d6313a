package main

// lookalike rebuild: a shadow rebuild of a collection into its next generation with another model
// or descriptor profile (docs/lifecycle.md), on a data directory (the lifecycle manager runs in this
// process) or through a running server (--server: the Go client), followed to the end with a
// progress bar on a terminal and plain progress lines otherwise; --switch moves the alias once the
// copy is complete.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/lookalike/lookalike/client"
	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/lifecycle"
)

// rebuilder is a rebuild's controls, local or through --server.
type rebuilder interface {
	// start starts the rebuild, or returns the unfinished one of the collection (running true).
	start(ctx context.Context, model, profile string) (j client.Rebuild, running bool, err error)
	status(ctx context.Context) (client.Rebuild, error)
	switchAlias(ctx context.Context) (client.Rebuild, error)
	close()
}

func runRebuild(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "rebuild")
	cf := addCatalogFlags(fs, true)
	model := fs.String("model", "", "model id of the new generation (config model: or models:; default: the collection's model)")
	fs.StringVar(&cf.profile, "profile", "", "descriptor profile of the new generation: "+strings.Join(spec.ProfileNames(), ", ")+
		" or rmac:S1,S2,... (default: the model's configured profile)")
	doSwitch := fs.Bool("switch", false, "point the collection's alias at the new generation once it is complete")
	quiet := fs.Bool("quiet", false, "no progress output")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 || (*model == "" && cf.profile == "") {
		return fmt.Errorf("%w: lookalike rebuild [--collection C] --model ID and/or --profile P [--switch] [--server URL]", errUsage)
	}
	if _, err := spec.ParseProfile(cf.profile); err != nil {
		return fmt.Errorf("%w: --profile: %v", errUsage, err)
	}
	j, err := driveRebuild(ctx, env, cf, *doSwitch, *quiet,
		func(rb rebuilder) (client.Rebuild, bool, error) { return rb.start(ctx, *model, cf.profile) },
		func(j client.Rebuild) bool { return sameTarget(j, *model, cf.profile) })
	if err != nil {
		return err
	}
	return printRebuild(env, cf.asJSON, j)
}

// driveRebuild opens the rebuild controls of the flags' collection (local or --server), starts a
// job with start, or follows the unfinished one start reports when same accepts it, follows it to
// ready and switches with doSwitch: what rebuild and tune share.
func driveRebuild(ctx context.Context, env *cliEnv, cf *catalogFlags, doSwitch, quiet bool,
	start func(rebuilder) (client.Rebuild, bool, error), same func(client.Rebuild) bool) (client.Rebuild, error) {
	var rb rebuilder
	var err error
	if cf.server != "" {
		rb, err = connectRebuild(env, cf)
	} else {
		rb, err = openRebuild(ctx, env, cf)
	}
	if err != nil {
		return client.Rebuild{}, err
	}
	defer rb.close()
	j, running, err := start(rb)
	if err != nil {
		return j, err
	}
	if running {
		if !same(j) || j.State == client.RebuildSwitched || j.State == client.RebuildDone {
			return j, fmt.Errorf("collection %q has another rebuild (to %s, model %s, profile %s, projection %q) that is %s: finish it first",
				cf.collection, j.To, j.Model, j.Profile, j.Projection, j.State)
		}
		fmt.Fprintf(env.stderr, "following the rebuild of %s into %s started %s\n", j.Collection, j.To, j.StartedAt.Local().Format(time.DateTime))
	}
	j, err = followRebuild(ctx, env, rb, j, quiet || cf.asJSON)
	if err != nil {
		return j, err
	}
	if doSwitch {
		if j, err = rb.switchAlias(ctx); err != nil {
			return j, fmt.Errorf("switch: %w", err)
		}
	}
	return j, nil
}

// sameTarget says whether a running rebuild builds what was asked for ("" matches anything).
func sameTarget(j client.Rebuild, model, profile string) bool {
	return (model == "" || j.Model == model) && (profile == "" || j.Profile == profile)
}

// rebuildPoll is how often a followed rebuild is asked for its progress.
const rebuildPoll = 500 * time.Millisecond

// followRebuild waits until the copy is complete (ready), showing progress; a failed rebuild is
// an error. An interruption leaves the rebuild to resume (locally on the next run, remotely it
// goes on in the server).
func followRebuild(ctx context.Context, env *cliEnv, rb rebuilder, j client.Rebuild, quiet bool) (client.Rebuild, error) {
	p := newRebuildProgress(env.stderr, quiet)
	defer p.finish()
	tick := time.NewTicker(rebuildPoll)
	defer tick.Stop()
	for {
		switch j.State {
		case client.RebuildReady, client.RebuildSwitched, client.RebuildDone:
			p.update(j)
			return j, nil
		case client.RebuildFailed:
			return j, fmt.Errorf("rebuild of %s into %s failed: %s", j.Collection, j.To, j.Error)
		}
		p.update(j)
		select {
		case <-ctx.Done():
			return j, fmt.Errorf("interrupted at %d of %d items (the rebuild is durable: run the command again, or serve, to resume it): %w", j.Copied, j.Total, ctx.Err())
		case <-tick.C:
		}
		var err error
		if j, err = rb.status(ctx); err != nil {
			return j, err
		}
	}
}

// rebuildProgress draws a bar on a terminal and writes a line every few seconds elsewhere (a log
// file or CI keeps them readable).
type rebuildProgress struct {
	w        io.Writer
	quiet    bool
	bar      *progressbar.ProgressBar
	terminal bool
	last     time.Time
	lastLine string
	state    string
}

// progressLineEvery spaces the plain progress lines.
const progressLineEvery = 5 * time.Second

func newRebuildProgress(w io.Writer, quiet bool) *rebuildProgress {
	return &rebuildProgress{w: w, quiet: quiet, terminal: isTerminal(w)}
}

// isTerminal says whether w is a character device (a terminal), where a bar redraws in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *rebuildProgress) update(j client.Rebuild) {
	if p.quiet {
		return
	}
	if p.terminal {
		if p.bar == nil {
			p.bar = newProgress(p.w, max(j.Total, 1), fmt.Sprintf("rebuild %s → %s", j.From, j.To))
		}
		p.bar.ChangeMax(max(j.Total, j.Copied, 1))
		_ = p.bar.Set(j.Copied)
		return
	}
	// A line when the state changes, else at most every progressLineEvery.
	line := progressLine(j)
	if line == p.lastLine || time.Since(p.last) < progressLineEvery && j.State == p.state {
		return
	}
	fmt.Fprintln(p.w, line)
	p.last, p.lastLine, p.state = time.Now(), line, j.State
}

func (p *rebuildProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}

// progressLine is one plain progress line: state, counts, the server's rate and ETA.
func progressLine(j client.Rebuild) string {
	if j.State == client.RebuildLearning {
		return fmt.Sprintf("tune %s → %s: learning a projection, %d photos embedded", j.From, j.To, j.Sampled)
	}
	pct := 100 * float64(j.Copied) / float64(max(j.Total, 1))
	s := fmt.Sprintf("rebuild %s → %s: %s %d/%d items (%.0f%%)", j.From, j.To, j.State, j.Copied, j.Total, pct)
	if j.State == client.RebuildCopying && j.RatePerSec > 0 {
		s += fmt.Sprintf(", %.1f items/s, ETA %s", j.RatePerSec, (time.Duration(j.ETASeconds) * time.Second).String())
	}
	return s
}

func printRebuild(env *cliEnv, asJSON bool, j client.Rebuild) error {
	if asJSON {
		return writeJSON(env.stdout, j)
	}
	fmt.Fprintf(env.stdout, "rebuild of %s into %s (model %s, profile %s): %s, %d items copied (%d from thumbnails, %d skipped), %d writes mirrored, %.1f s\n",
		j.Collection, j.To, j.Model, j.Profile, j.State, j.Copied, j.FromThumbnail, j.Skipped, j.Mirrored, time.Since(j.StartedAt).Seconds())
	switch j.State {
	case client.RebuildReady:
		fmt.Fprintf(env.stdout, "%s still answers from %s: compare (GET /v1/collections/%s/rebuild/report), then switch (--switch, or POST .../switch)\n", j.Collection, j.Live, j.Collection)
	case client.RebuildSwitched:
		fmt.Fprintf(env.stdout, "%s now answers from %s; %s keeps receiving writes until %s for a rollback (POST /v1/collections/%s/rollback)\n",
			j.Collection, j.Live, j.From, j.GraceUntil.Local().Format(time.DateTime), j.Collection)
	}
	return nil
}

// --- through a server --------------------------------------------------------------------------

type remoteRebuild struct{ r *remote }

func connectRebuild(env *cliEnv, cf *catalogFlags) (rebuilder, error) {
	r, err := cf.connect(env)
	if err != nil {
		return nil, err
	}
	return remoteRebuild{r}, nil
}

func (rr remoteRebuild) start(ctx context.Context, model, profile string) (client.Rebuild, bool, error) {
	return rr.begin(ctx, func() (*client.Rebuild, error) {
		return rr.r.c.StartRebuild(ctx, rr.r.collection, client.RebuildSpec{Model: model, Profile: profile})
	})
}

// begin starts a job with start, or returns the collection's unfinished one (running true).
func (rr remoteRebuild) begin(ctx context.Context, start func() (*client.Rebuild, error)) (client.Rebuild, bool, error) {
	j, err := start()
	if isAPIError(err, http.StatusConflict, "rebuild_running") {
		cur, err := rr.status(ctx)
		return cur, true, err
	}
	if err != nil {
		return client.Rebuild{}, false, rr.r.explain(err)
	}
	return *j, false, nil
}

func (rr remoteRebuild) status(ctx context.Context) (client.Rebuild, error) {
	j, err := rr.r.c.RebuildStatus(ctx, rr.r.collection)
	if err != nil {
		return client.Rebuild{}, rr.r.explain(err)
	}
	return *j, nil
}

func (rr remoteRebuild) switchAlias(ctx context.Context) (client.Rebuild, error) {
	j, err := rr.r.c.Switch(ctx, rr.r.collection)
	if err != nil {
		return client.Rebuild{}, rr.r.explain(err)
	}
	return *j, nil
}

func (rr remoteRebuild) close() {}

// --- on a data directory -----------------------------------------------------------------------

// localRebuild runs the lifecycle manager in this process: it resumes a persisted rebuild as the
// server would, and stops (durably) when the command ends.
type localRebuild struct {
	env     *cliEnv
	db      *index.DB
	engines []*embed.Engine
	mgr     *lifecycle.Manager
	projs   *lifecycle.Projections
	base    string
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

func openRebuild(ctx context.Context, env *cliEnv, cf *catalogFlags) (rebuilder, error) {
	cfg, err := env.loadConfig()
	if err != nil {
		return nil, err
	}
	cf.apply(&cfg)
	engines, err := startEngines(ctx, cfg, env)
	if err != nil {
		return nil, err
	}
	db, err := openDB(cfg, env)
	if err != nil {
		closeEngines(engines)
		return nil, err
	}
	col, err := db.Collection(db.Resolve(cf.collection))
	if err != nil {
		db.Close()
		closeEngines(engines)
		return nil, fmt.Errorf("collection %q: %w", cf.collection, err)
	}
	lr := &localRebuild{env: env, db: db, engines: engines, projs: lifecycle.NewProjections(db)}
	lr.base, _ = index.ParseGeneration(col.Name())
	lr.mgr = lifecycle.New(db, lifecycle.Options{Engine: lr.engine, Source: lifecycle.StoredSource, Grace: cfg.Lifecycle.Grace,
		Projections: lr.projs, Logger: env.logger(cfg)})
	var mctx context.Context
	mctx, lr.stop = context.WithCancel(context.WithoutCancel(ctx))
	lr.mgr.Start(mctx, &lr.wg)
	return lr, nil
}

// engine is the Options.Engine of the local manager: a loaded engine bound to the profile and the
// learned projection fp names.
func (lr *localRebuild) engine(fp string) (lifecycle.Embedder, bool) {
	for _, e := range lr.engines {
		if pe, ok := lifecycle.WithFingerprint(e, fp, lr.projs); ok {
			return pe, true
		}
	}
	return nil, false
}

// target is the engine the rebuild makes its vectors with (rules of POST .../rebuild).
func (lr *localRebuild) target(model, profile string) (lifecycle.Embedder, error) {
	live, err := lr.db.Collection(lr.db.Resolve(lr.base))
	if err != nil {
		return nil, err
	}
	engines := make([]lifecycle.Embedder, len(lr.engines))
	for i, e := range lr.engines {
		engines[i] = e
	}
	eng, err := lifecycle.Target(engines, live.Fingerprint(), model, profile)
	if errors.Is(err, embed.ErrProfile) {
		return nil, fmt.Errorf("%w: --profile: %v", errUsage, err)
	}
	return eng, err
}

func (lr *localRebuild) start(_ context.Context, model, profile string) (client.Rebuild, bool, error) {
	eng, err := lr.target(model, profile)
	if err != nil {
		return client.Rebuild{}, false, err
	}
	j, err := lr.mgr.Rebuild(lr.base, eng)
	if errors.Is(err, lifecycle.ErrRunning) {
		j, err = lr.mgr.Status(lr.base)
		return asRebuild(j), true, err
	}
	return asRebuild(j), false, err
}

func (lr *localRebuild) status(context.Context) (client.Rebuild, error) {
	j, err := lr.mgr.Status(lr.base)
	return asRebuild(j), err
}

func (lr *localRebuild) switchAlias(ctx context.Context) (client.Rebuild, error) {
	j, err := lr.mgr.Switch(ctx, lr.base)
	return asRebuild(j), err
}

func (lr *localRebuild) close() {
	lr.stop()
	lr.wg.Wait()
	if err := lr.db.Close(); err != nil {
		fmt.Fprintf(lr.env.stderr, "close data directory: %v\n", err)
	}
	closeEngines(lr.engines)
}

// asRebuild is the job in the API's (and the client's) shape: the same JSON.
func asRebuild(j lifecycle.Job) client.Rebuild {
	var out client.Rebuild
	raw, _ := json.Marshal(j)
	_ = json.Unmarshal(raw, &out)
	return out
}
