package lifecycle

import (
	"context"
	"fmt"
	"sync"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/project"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
)

// projectionKey prefixes a learned projection's record in the DB's lifecycle bucket; the rest of
// the key is its name ("pw512:1a2b3c4d"), which the fingerprints of its collections carry.
const projectionKey = "projection/"

// Projections are the learned projections of a data file, stored in bbolt next to the rebuild jobs
// (project.Projection's versioned binary form, keyed by name: the name ends in the hash of those
// bytes, so a record never changes once written) and kept in memory once read.
type Projections struct {
	db *index.DB
	mu sync.Mutex
	m  map[string]*project.Projection
}

// NewProjections reads and writes the projections of db.
func NewProjections(db *index.DB) *Projections {
	return &Projections{db: db, m: map[string]*project.Projection{}}
}

// Get returns the projection named name; ErrNoProjection when the data file has none, or when its
// record is corrupt.
func (ps *Projections) Get(name string) (*project.Projection, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.m[name]; ok {
		return p, nil
	}
	raw := ps.db.State(projectionKey + name)
	if raw == nil {
		return nil, fmt.Errorf("%w: %q is not in the data file", ErrNoProjection, name)
	}
	p, err := project.Unmarshal(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrNoProjection, name, err)
	}
	if p.Name() != name {
		return nil, fmt.Errorf("%w: the record of %q holds %q", ErrNoProjection, name, p.Name())
	}
	ps.m[name] = p
	return p, nil
}

// Put stores p durably under its name.
func (ps *Projections) Put(p *project.Projection) error {
	raw, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	if err := ps.db.SetState(projectionKey+p.Name(), raw); err != nil {
		return fmt.Errorf("store projection %s: %w", p.Name(), err)
	}
	ps.mu.Lock()
	ps.m[p.Name()] = p
	ps.mu.Unlock()
	return nil
}

// projected is an engine (bound to its profile) whose images are passed through a learned
// projection: what a collection of a projected fingerprint embeds its photos and queries with.
type projected struct {
	Embedder
	proj        *project.Projection
	fingerprint string
}

func (p projected) Embed(ctx context.Context, imgs []embed.Image) ([]embed.Embedding, error) {
	bound := make([]embed.Image, len(imgs))
	profile := p.Embedder.Info().Profile
	for i, img := range imgs {
		// an image asking for another profile (the fast feature map of explain) is not projected
		if img.Projection == nil && (img.Profile == "" || img.Profile == profile) {
			img.Projection = p.proj
		}
		bound[i] = img
	}
	return p.Embedder.Embed(ctx, bound)
}

func (p projected) Info() embed.Info {
	info := p.Embedder.Info()
	info.Fingerprint, info.Dims, info.Projection = p.fingerprint, p.proj.Dims, p.proj.Name()
	return info
}

// WithFingerprint returns e bound to what makes vectors of fingerprint fp: the descriptor profile
// fp names (WithProfileFor) and, when fp names a learned projection, that projection from ps
// (nil ps: none is known). False when e makes no such vectors.
func WithFingerprint(e Embedder, fp string, ps *Projections) (Embedder, bool) {
	base, name := spec.SplitProjection(fp)
	pe, ok := WithProfileFor(e, base)
	if !ok || name == "" {
		return pe, ok
	}
	if ps == nil {
		return nil, false
	}
	p, err := ps.Get(name)
	if err != nil || p.In != pe.Info().Spec.EmbeddingDim {
		return nil, false
	}
	return projected{Embedder: pe, proj: p, fingerprint: fp}, true
}
