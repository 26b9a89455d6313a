package lifecycle

import (
	"context"
	"fmt"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/project"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
)

// A tune learns a per-region projection (embed/project) from a collection's own stored photos and
// rebuilds the collection into it: the projection's name joins the fingerprint of the new
// generation (spec.WithProjection), so the two kinds of vectors are never mixed, and the old
// generation serves until the switch, as in any rebuild.

// Tune defaults and bounds.
const (
	// DefaultTuneSample is how many photos a projection is learned from at most.
	DefaultTuneSample = 2000
	// TuneItemsPerDim: a d-dimensional projection is learned from at least 2·d photos (each gives
	// 10 to 40 regions, so 20 to 80 regions per kept axis).
	TuneItemsPerDim = 2
	// learnBatch is how many photos are embedded at once while learning.
	learnBatch = 16
)

// TuneOptions is what a tune learns. Dims 0 turns the projection off (a rebuild into the
// unprojected vectors). Power is project.Options.Power: each axis is divided by
// eigenvalue^Power, 0 (the default) being plain PCA and 0.5 PCA-whitening.
type TuneOptions struct {
	Dims   int     `json:"dims"`
	Power  float64 `json:"power"`
	Sample int     `json:"sample"`
}

// Tune starts learning a projection for base's live generation, then rebuilding it into the next
// generation with it (Job.State learning, then as a rebuild); with o.Dims 0 it rebuilds base into
// the vectors without a projection. ErrRunning, ErrNotRegional (a fast collection), ErrTuneInput,
// *TooFewItemsError, ErrUnknownModel (no engine for the collection's vectors), ErrSameVectors
// (projection off on a collection without one).
func (m *Manager) Tune(base string, o TuneOptions) (Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	live, err := m.idle(base)
	if err != nil {
		return Job{}, err
	}
	baseFP, cur := spec.SplitProjection(live.Fingerprint())
	p, err := spec.ParseProfile(spec.ProfileOfFingerprint(baseFP))
	if err != nil || !p.Regional() {
		return Job{}, fmt.Errorf("%w: %s holds vectors of profile %s (rebuild it into a regional profile such as %s first)", ErrNotRegional, live.Name(), spec.ProfileOfFingerprint(baseFP), spec.DefaultProfile)
	}
	eng, ok := m.opts.Engine(baseFP)
	if !ok {
		return Job{}, fmt.Errorf("%w: no loaded model makes the vectors of %s (fingerprint %s)", ErrUnknownModel, live.Name(), baseFP)
	}
	if o.Dims == 0 {
		if cur == "" {
			return Job{}, fmt.Errorf("%w: %s has no projection to turn off", ErrSameVectors, live.Name())
		}
		return m.begin(live, eng, nil)
	}
	if o.Sample == 0 {
		o.Sample = DefaultTuneSample
	}
	in := eng.Info().Spec.EmbeddingDim
	need := TuneItemsPerDim * o.Dims
	switch {
	case o.Dims < project.MinDims || o.Dims > in:
		return Job{}, fmt.Errorf("%w: dims %d: want %d..%d (the model's channels)", ErrTuneInput, o.Dims, project.MinDims, in)
	case !(o.Power >= 0 && o.Power <= 1):
		return Job{}, fmt.Errorf("%w: power %g: want [0, 1] (0: plain PCA, 0.5: whitening)", ErrTuneInput, o.Power)
	case o.Sample < need:
		return Job{}, fmt.Errorf("%w: sample %d: a %d-d projection is learned from at least %d photos", ErrTuneInput, o.Sample, o.Dims, need)
	}
	if n := live.Info().Count; n < need {
		return Job{}, &TooFewItemsError{Have: n, Need: need, Dims: o.Dims}
	}
	return m.begin(live, eng, &o)
}

// learn embeds an even-stride sample of the live generation's stored photos under its
// (unprojected) profile, learns the projection from their regions, stores it, and moves the job to
// starting with the projected fingerprint. It keeps nothing before the projection is stored, so a
// crash learns again from the start (learning is deterministic: the same photos give the same
// projection and fingerprint).
func (m *Manager) learn(ctx context.Context, r *run) error {
	j := r.snapshot()
	live, err := m.db.Collection(j.Live)
	if err != nil {
		return err
	}
	baseFP, _ := spec.SplitProjection(live.Fingerprint())
	eng, ok := m.opts.Engine(baseFP)
	if !ok {
		return fmt.Errorf("%w: no engine for fingerprint %s", ErrUnknownModel, baseFP)
	}
	ids, err := sampleIDs(live, j.Tune.Sample)
	if err != nil {
		return err
	}
	m.log.Info("tune: learning a projection", "collection", j.Base, "from", live.Name(), "photos", len(ids), "dims", j.Tune.Dims, "power", j.Tune.Power)
	// each photo keeps at most its share of the regions the covariance is computed from, so
	// memory stays at project.DefaultMaxRegions regions whatever the sample
	perPhoto := max(1, (project.DefaultMaxRegions+len(ids)-1)/max(len(ids), 1))
	var regions []float32
	in := 0
	for lo := 0; lo < len(ids); lo += learnBatch {
		imgs := make([]embed.Image, 0, learnBatch)
		for _, id := range ids[lo:min(lo+learnBatch, len(ids))] {
			if img := m.photo(live, id); len(img) > 0 {
				imgs = append(imgs, embed.Image{Data: img, Regions: true})
			}
		}
		if len(imgs) == 0 {
			continue
		}
		embs, err := m.embedThrottled(ctx, eng, imgs)
		if err != nil {
			return err
		}
		for _, e := range embs {
			n := 0
			for _, c := range e.RegionCounts {
				n += c
			}
			if e.Err != nil || n == 0 {
				continue
			}
			in = len(e.Regions) / n
			regions = appendStride(regions, e.Regions, in, n, perPhoto)
		}
		r.mu.Lock()
		r.job.Sampled += len(imgs)
		r.mu.Unlock()
	}
	if in == 0 {
		return fmt.Errorf("%w: no photo of %s could be embedded to learn from", ErrTooFewItems, live.Name())
	}
	p, err := project.Learn(regions, in, project.Options{Dims: j.Tune.Dims, Power: j.Tune.Power})
	if err != nil {
		return fmt.Errorf("learn: %w", err)
	}
	fp := spec.WithProjection(baseFP, p.Name())
	if fp == live.Fingerprint() {
		return fmt.Errorf("%w: %s already holds vectors of %s", ErrSameVectors, live.Name(), fp)
	}
	if err := m.opts.Projections.Put(p); err != nil {
		return err
	}
	r.mu.Lock()
	r.job.Fingerprint, r.job.Projection, r.job.State = fp, p.Name(), StateStarting
	r.mu.Unlock()
	m.log.Info("tune: projection learned", "collection", j.Base, "projection", p.Name(), "regions", len(regions)/in, "fingerprint", fp)
	return m.save(r)
}

// photo is what an item is embedded from: its source rendition, else its thumbnail.
func (m *Manager) photo(col *index.Collection, id string) []byte {
	if m.opts.Source != nil {
		if b, ok := m.opts.Source(col, id); ok {
			return b
		}
	}
	b, _ := col.Thumbnail(id)
	return b
}

// sampleIDs lists col's ids and keeps at most n of them at an even stride.
func sampleIDs(col *index.Collection, n int) ([]string, error) {
	var ids []string
	for cursor := ""; ; {
		page, next, err := col.List(cursor, 10000)
		if err != nil {
			return nil, err
		}
		for _, it := range page {
			ids = append(ids, it.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(ids) <= n {
		return ids, nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = ids[int(int64(i)*int64(len(ids))/int64(n))]
	}
	return out, nil
}

// appendStride appends to dst at most keep of the n rows of in values in rows, at an even stride.
func appendStride(dst, rows []float32, in, n, keep int) []float32 {
	k := min(n, keep)
	for i := 0; i < k; i++ {
		r := int(int64(i) * int64(n) / int64(k))
		dst = append(dst, rows[r*in:(r+1)*in]...)
	}
	return dst
}
