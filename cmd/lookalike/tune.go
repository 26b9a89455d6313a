package main

// lookalike tune: learn a projection (per-region PCA-whitening, embed/project) from a collection's
// own stored photos and rebuild the collection into its next generation with it
// (docs/lifecycle.md, "Learned projection"); --dims 0 rebuilds it without one. Like rebuild, it
// runs on a data directory or through a server (--server), follows the job to the end and switches
// with --switch.

import (
	"context"
	"errors"
	"fmt"

	"github.com/lookalike/lookalike/client"
	"github.com/lookalike/lookalike/embed/project"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/lifecycle"
)

// tuner starts a tune (or returns the unfinished rebuild of the collection, running true).
type tuner interface {
	rebuilder
	tune(ctx context.Context, o lifecycle.TuneOptions) (j client.Rebuild, running bool, err error)
}

func runTune(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "tune")
	cf := addCatalogFlags(fs, true)
	var o lifecycle.TuneOptions
	fs.IntVar(&o.Dims, "dims", project.DefaultDims, "dimensions of the projected vectors (0: turn the projection off)")
	fs.Float64Var(&o.Power, "power", 0, "each axis is divided by eigenvalue^power: 0 is plain PCA, 0.5 PCA-whitening")
	fs.IntVar(&o.Sample, "sample", lifecycle.DefaultTuneSample, "learn from at most this many of the collection's photos (an even stride)")
	doSwitch := fs.Bool("switch", false, "point the collection's alias at the new generation once it is complete")
	quiet := fs.Bool("quiet", false, "no progress output")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) > 0:
		return fmt.Errorf("%w: lookalike tune [--collection C] [--dims 512] [--power 0] [--sample 2000] [--switch] [--server URL]", errUsage)
	case o.Dims < 0 || !(o.Power >= 0 && o.Power <= 1) || o.Sample <= 0:
		return fmt.Errorf("%w: --dims must be 0 (off) or more, --power in [0, 1], --sample positive", errUsage)
	}
	j, err := driveRebuild(ctx, env, cf, *doSwitch, *quiet,
		func(rb rebuilder) (client.Rebuild, bool, error) { return rb.(tuner).tune(ctx, o) },
		func(j client.Rebuild) bool { return sameTune(j, o) })
	if err != nil {
		return err
	}
	if !cf.asJSON && j.Projection != "" {
		fmt.Fprintf(env.stdout, "projection %s learned from %d photos; new fingerprint %s\n", j.Projection, j.Sampled, j.Fingerprint)
	}
	return printRebuild(env, cf.asJSON, j)
}

// sameTune says whether a running rebuild is the tune asked for.
func sameTune(j client.Rebuild, o lifecycle.TuneOptions) bool {
	if o.Dims == 0 {
		return j.Tune == nil && j.Projection == ""
	}
	return j.Tune != nil && j.Tune.Dims == o.Dims && j.Tune.Power == o.Power && j.Tune.Sample == o.Sample
}

func (lr *localRebuild) tune(_ context.Context, o lifecycle.TuneOptions) (client.Rebuild, bool, error) {
	j, err := lr.mgr.Tune(lr.base, o)
	var few *lifecycle.TooFewItemsError
	switch {
	case errors.Is(err, lifecycle.ErrRunning):
		j, err = lr.mgr.Status(lr.base)
		return asRebuild(j), true, err
	case errors.As(err, &few):
		return client.Rebuild{}, false, fmt.Errorf("%w (lower --dims: %d items allow up to %d)", err, few.Have, few.Have/lifecycle.TuneItemsPerDim)
	case errors.Is(err, lifecycle.ErrTuneInput):
		return client.Rebuild{}, false, fmt.Errorf("%w: %v", errUsage, err)
	}
	return asRebuild(j), false, err
}

func (rr remoteRebuild) tune(ctx context.Context, o lifecycle.TuneOptions) (client.Rebuild, bool, error) {
	return rr.begin(ctx, func() (*client.Rebuild, error) {
		return rr.r.c.StartTune(ctx, rr.r.collection, client.Tune{Dims: o.Dims, Power: o.Power, Sample: o.Sample, Off: o.Dims == 0})
	})
}

// projectionOf names the learned projection of col's vectors ("" = none).
func projectionOf(col *index.Collection) string {
	_, p := spec.SplitProjection(col.Fingerprint())
	return p
}
