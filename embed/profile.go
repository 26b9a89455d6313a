package embed

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/lookalike/lookalike/embed/spec"
)

// ProfileInfo names a profile the engine serves and the fingerprint of its vectors.
type ProfileInfo struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	Scales      []int  `json:"scales,omitempty"`
}

// ProfileFingerprint resolves a profile name ("" = the engine's default) for this engine's model:
// the profile and the fingerprint its vectors get. ErrProfile when the name is unknown or the model
// cannot serve it.
func (i Info) ProfileFingerprint(name string) (spec.Profile, string, error) {
	if name == "" {
		name = i.Profile
	}
	p, err := spec.ParseProfile(name)
	if err != nil {
		return spec.Profile{}, "", fmt.Errorf("%w: %v", ErrProfile, err)
	}
	// Info.Fingerprint is the default profile's (an Info without Profile describes a fast engine).
	if p.Name == i.Profile || (i.Profile == "" && !p.Regional()) {
		return p, i.Fingerprint, nil
	}
	if err := i.Spec.CheckProfile(p); err != nil {
		return spec.Profile{}, "", fmt.Errorf("%w: %v", ErrProfile, err)
	}
	return p, i.Spec.ProfileFingerprint(i.ModelSHA256, p), nil
}

// ProfileFor returns the profile under which this engine makes vectors of fingerprint fp, or false
// when it makes none (another model, preprocessing or profile).
func (i Info) ProfileFor(fp string) (string, bool) {
	if fp == i.Fingerprint {
		return i.Profile, true
	}
	p, got, err := i.ProfileFingerprint(spec.ProfileOfFingerprint(fp))
	if err != nil || got != fp {
		return "", false
	}
	return p.Name, true
}

// profiles caches parsed profiles by the names callers use.
type profiles struct {
	def  spec.Profile
	spec spec.Model
	m    sync.Map // name → spec.Profile
}

// resolve returns the profile an Image asks for; ErrProfile when unknown or not servable.
func (ps *profiles) resolve(name string) (spec.Profile, error) {
	if name == "" {
		return ps.def, nil
	}
	if p, ok := ps.m.Load(name); ok {
		return p.(spec.Profile), nil
	}
	p, err := spec.ParseProfile(name)
	if err == nil {
		err = ps.spec.CheckProfile(p)
	}
	if err != nil {
		return spec.Profile{}, fmt.Errorf("%w: %v", ErrProfile, err)
	}
	ps.m.Store(name, p)
	return p, nil
}

// scaledSize is the model input size (w, h) of a crop of cw x ch pixels, taken from a photo whose
// long side is long, at profile scale s. The crop keeps the factor s/long the whole photo gets (a
// query crop is not blown up to s itself: the objects in it keep the size they have in the
// database photos, 0.611 vs 0.577 Oxford mAP in the prototype). The short side is raised to
// spec.MinShortSide (one cell of a stride-32 map) unless that would make the long side exceed
// spec.MaxLongFactor * s, which bounds the pixels of extreme aspect ratios.
func scaledSize(cw, ch, long, s int) (w, h int, f float64) {
	f = float64(s) / float64(max(long, 1))
	short, lng := float64(min(cw, ch)), float64(max(cw, ch))
	if short*f < spec.MinShortSide {
		f = min(spec.MinShortSide/short, float64(spec.MaxLongFactor*s)/lng)
	}
	w = max(1, int(math.Round(float64(cw)*f)))
	h = max(1, int(math.Round(float64(ch)*f)))
	return w, h, f
}

// regionalWant is the decode scale a regional profile needs: its largest scale's factor.
func regionalWant(p spec.Profile) func(cfg Config, r Rect) float64 {
	return func(cfg Config, r Rect) float64 {
		_, _, f := scaledSize(r.W, r.H, max(cfg.Width, cfg.Height), p.MaxScale())
		return f
	}
}

// scaleJob is one scale of a regional image, ready for a session.
type scaleJob struct {
	tensor []float32 // from floatPool
	w, h   int
}

// prepareScales decodes img once, at the resolution its largest scale needs, and resamples it to
// each scale of p in turn, largest first, handing each to emit as soon as it is ready (so the
// largest scale's inference overlaps the resampling of the others). It stops when emit returns
// false. On a decode failure out.Err is set and emit is never called.
func (e *Engine) prepareScales(img Image, p spec.Profile, out *Embedding, emit func(k int, sj scaleJob) bool) {
	t0 := time.Now()
	d, err := decodeImage(img.Data, img.Crop, e.limits, regionalWant(p))
	t1 := time.Now()
	out.Width, out.Height = d.cfg.Width, d.cfg.Height
	out.Timings.Decode = t1.Sub(t0)
	if err != nil {
		out.Err = err
		return
	}
	defer d.release()
	// the crop in full-resolution pixels: d.box is in the (possibly DCT-downscaled) decoded image
	sx := float64(d.cfg.Width) / float64(d.img.w)
	sy := float64(d.cfg.Height) / float64(d.img.h)
	cw := int(math.Round((d.box[2] - d.box[0]) * sx))
	ch := int(math.Round((d.box[3] - d.box[1]) * sy))
	long := max(d.cfg.Width, d.cfg.Height)
	for k, s := range p.Scales {
		t := time.Now()
		w, h, _ := scaledSize(cw, ch, long, s)
		tensor := getFloats(3 * w * h)
		resizeInto(e.spec, tensor, d, w, h)
		out.Timings.Preprocess += time.Since(t)
		if !emit(k, scaleJob{tensor: tensor, w: w, h: h}) {
			return
		}
	}
}

// combineScales sums the per-scale R-MAC vectors of one image (each L2-normalised) into out.Vector,
// L2-normalised, and takes the labels of the smallest scale (the closest to the classifier's
// training size). The first per-scale error wins.
func combineScales(out *Embedding, parts []Embedding) {
	for _, p := range parts {
		if p.Err != nil {
			out.Err = p.Err
			return
		}
	}
	v := parts[0].Vector
	for _, p := range parts[1:] {
		for k, x := range p.Vector {
			v[k] += x
		}
	}
	l2normalize(v)
	out.Vector = v
	out.Labels = parts[len(parts)-1].Labels
	for _, p := range parts {
		out.Regions = append(out.Regions, p.Regions...)
		out.RegionCounts = append(out.RegionCounts, p.RegionCounts...)
		out.Timings.Inference += p.Timings.Inference
		out.Batch = max(out.Batch, p.Batch)
	}
}
