package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/ingest"
)

// reembedBatch is how many items one Store call embeds.
const reembedBatch = 64

// runReembed embeds a collection again, from the source renditions stored with its items, into
// another collection: under another descriptor profile, or with another model (the configured one),
// without the original uploads. Ids and metadata are kept; items without a source rendition are
// listed as failed.
func runReembed(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "reembed")
	cf := addCatalogFlags(fs, false)
	into := fs.String("into", "", "collection to fill (created when missing)")
	fs.StringVar(&cf.profile, "profile", "", "descriptor profile of the new collection: "+strings.Join(spec.ProfileNames(), ", ")+
		" or rmac:S1,S2,... (default: model.profile)")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *into == "" {
		return fmt.Errorf("%w: lookalike reembed [--collection FROM] --into TO [--profile P]", errUsage)
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	cf.apply(&cfg)
	if *into == cf.collection {
		return fmt.Errorf("%w: --into must name another collection than %q", errUsage, cf.collection)
	}
	from := cf.collection
	cf.collection = *into
	eng, db, dst, err := cf.openWithEngine(ctx, env, cfg, true)
	if err != nil {
		return err
	}
	defer eng.Close()
	defer db.Close()
	src, err := db.Collection(from)
	if err != nil {
		return fmt.Errorf("collection %q: %w", from, err)
	}
	policy := ingest.Policy{ThumbnailSize: cfg.Limits.ThumbnailSize, ThumbnailQuality: cfg.Limits.ThumbnailQuality,
		SourceSize: cfg.Limits.SourceSize, SourceQuality: cfg.Limits.SourceQuality, MaxPixels: cfg.Limits.MaxPixels,
		Profile: profileOf(eng, dst)}
	start := time.Now()
	var stored, failed int
	for cursor := ""; ; {
		page, next, err := src.List(cursor, reembedBatch)
		if err != nil {
			return err
		}
		inputs := make([]ingest.Input, 0, len(page))
		for _, it := range page {
			source, err := src.Source(it.ID)
			if errors.Is(err, index.ErrNotFound) {
				continue // deleted since the page was read
			}
			if err != nil {
				return err
			}
			if len(source) == 0 {
				failed++
				fmt.Fprintf(env.stdout, "  failed %s: no source rendition (stored with limits.source_size 0, or before renditions)\n", it.ID)
				continue
			}
			inputs = append(inputs, ingest.Input{ID: it.ID, Image: source, Metadata: it.Metadata})
		}
		res, err := ingest.Store(ctx, eng, dst, inputs, policy)
		for _, r := range res {
			if r.Err != nil {
				failed++
				fmt.Fprintf(env.stdout, "  failed %s: %v\n", r.ID, r.Err)
			} else {
				stored++
			}
		}
		if err != nil {
			return fmt.Errorf("reembed interrupted after %d items (re-run to resume: unchanged items are skipped): %w", stored, err)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	el := time.Since(start).Seconds()
	fmt.Fprintf(env.stdout, "collection %s (%s) from %s: %d stored, %d failed in %.1f s (%.1f images/s)\n",
		*into, dst.Fingerprint(), from, stored, failed, el, float64(stored)/max(el, 1e-9))
	if failed > 0 {
		return fmt.Errorf("%d items failed", failed)
	}
	return nil
}
