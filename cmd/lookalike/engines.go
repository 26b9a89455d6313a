package main

import (
	"context"
	"fmt"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/internal/config"
)

// startEngines starts one engine per model: the configured model first, then each of models:
// (docs/lifecycle.md). The engines share one session pool (embed.workers; 0 = the device's
// default): each takes a share, so adding a model adds no sessions or threads. On an error the
// engines already started are closed.
func startEngines(ctx context.Context, cfg config.Config, env *cliEnv) ([]*embed.Engine, error) {
	models := append([]spec.Model{cfg.Model}, cfg.Models...)
	shares := poolShares(cfg.Embed.Workers, len(models))
	var engines []*embed.Engine
	for i, m := range models {
		mc := cfg
		mc.Model = m
		o, err := engineOptions(mc, env)
		var eng *embed.Engine
		if err == nil {
			o.Workers, o.PoolShare = shares[i], len(models)
			eng, err = embed.New(ctx, o)
		}
		if err != nil {
			closeEngines(engines)
			if i > 0 {
				return nil, fmt.Errorf("model %q: start embedding engine: %w", m.ID, err)
			}
			return nil, fmt.Errorf("start embedding engine: %w", err)
		}
		engines = append(engines, eng)
	}
	return engines, nil
}

// poolShares splits a configured pool of workers sessions among n engines: at least one each, the
// remainder to the first (the configured model, which serves new collections). workers 0 leaves
// each engine its share of the device's default (embed.Options.PoolShare).
func poolShares(workers, n int) []int {
	shares := make([]int, n)
	if workers <= 0 {
		return shares
	}
	for i := range shares {
		shares[i] = max(1, workers/n)
	}
	if workers > n {
		shares[0] += workers % n
	}
	return shares
}

func closeEngines(engines []*embed.Engine) {
	for _, e := range engines {
		e.Close()
	}
}
