package main

import (
	"context"
	"fmt"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/internal/config"
)

// startEngines starts one engine per model: the configured model first, then each of models:
// (docs/lifecycle.md). On an error the engines already started are closed.
func startEngines(ctx context.Context, cfg config.Config, env *cliEnv) ([]*embed.Engine, error) {
	var engines []*embed.Engine
	for i, m := range append([]spec.Model{cfg.Model}, cfg.Models...) {
		mc := cfg
		mc.Model = m
		eng, err := newEngine(ctx, mc, env)
		if err != nil {
			closeEngines(engines)
			if i > 0 {
				return nil, fmt.Errorf("model %q: %w", m.ID, err)
			}
			return nil, err
		}
		engines = append(engines, eng)
	}
	return engines, nil
}

func closeEngines(engines []*embed.Engine) {
	for _, e := range engines {
		e.Close()
	}
}
