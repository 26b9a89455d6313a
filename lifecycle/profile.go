package lifecycle

import (
	"context"
	"fmt"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
)

// profiled is an engine bound to one of its descriptor profiles: what a generation whose
// fingerprint names that profile embeds with. Images that name no profile get it; Info reports the
// profile's fingerprint, so the code that checks fingerprints needs no profile of its own.
type profiled struct {
	Embedder
	profile, fingerprint string
}

func (p profiled) Embed(ctx context.Context, imgs []embed.Image) ([]embed.Embedding, error) {
	bound := make([]embed.Image, len(imgs))
	for i, img := range imgs {
		if img.Profile == "" {
			img.Profile = p.profile
		}
		bound[i] = img
	}
	return p.Embedder.Embed(ctx, bound)
}

func (p profiled) Info() embed.Info {
	info := p.Embedder.Info()
	info.Fingerprint, info.Profile = p.fingerprint, p.profile
	return info
}

// WithProfileFor returns e bound to the profile under which it makes vectors of fingerprint fp
// (e itself for its default profile), or false when it makes none.
func WithProfileFor(e Embedder, fp string) (Embedder, bool) {
	info := e.Info()
	if fp == info.Fingerprint {
		return e, true
	}
	p, ok := info.ProfileFor(fp)
	if !ok {
		return nil, false
	}
	return profiled{Embedder: e, profile: p, fingerprint: fp}, true
}

// WithProfile returns e bound to the named descriptor profile ("" = its default): the engine a
// rebuild into that profile is started with. embed.ErrProfile when e's model cannot serve it.
func WithProfile(e Embedder, profile string) (Embedder, error) {
	_, fp, err := e.Info().ProfileFingerprint(profile)
	if err != nil {
		return nil, err
	}
	pe, _ := WithProfileFor(e, fp)
	return pe, nil
}

// Target is the engine a rebuild of a collection whose vectors have fingerprint liveFP makes its
// vectors with, among engines: model (a model id; "" = the engine that makes liveFP) under profile
// ("" = that model's configured profile). ErrUnknownModel, or embed.ErrProfile when the model
// cannot serve the profile.
func Target(engines []Embedder, liveFP, model, profile string) (Embedder, error) {
	// the live vectors' projection, if any, is not carried over: it was learned for their profile
	liveFP, _ = spec.SplitProjection(liveFP)
	var eng Embedder
	for _, e := range engines {
		if model == "" {
			if _, ok := WithProfileFor(e, liveFP); ok {
				eng = e
				break
			}
		} else if e.Info().ModelID == model {
			eng = e
			break
		}
	}
	switch {
	case eng == nil && model != "":
		return nil, fmt.Errorf("%w: no model %q is loaded", ErrUnknownModel, model)
	case eng == nil:
		return nil, fmt.Errorf("%w: no loaded model makes the vectors of fingerprint %s: name one", ErrUnknownModel, liveFP)
	}
	return WithProfile(eng, profile)
}

// StoredSource is the Options.Source of a server or the CLI: a rebuild embeds an item from its
// stored source rendition (limits.source_size) when it has one, from its thumbnail otherwise.
func StoredSource(col *index.Collection, id string) ([]byte, bool) {
	b, err := col.Source(id)
	return b, err == nil && len(b) > 0
}
