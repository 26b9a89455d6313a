package eval

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/project"
)

// Embedding a dataset: the database and query images of one preprocessing variant.

func embedVariant(ctx context.Context, ds *Dataset, c Config, o Options, regions map[string]*regionSet) (*vectorSet, error) {
	qSpec, dbSpec := c.specs(o.Spec)
	vs := &vectorSet{db: map[string][]float32{}, queries: map[string][]float32{}}
	dbEng, err := o.Engine(ctx, dbSpec)
	if err != nil {
		return nil, err
	}
	vs.model = dbEng.Info().Fingerprint
	if c.Profile != "" {
		if _, vs.model, err = dbEng.Info().ProfileFingerprint(c.Profile); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
	}
	qEng := dbEng
	if qSpec != dbSpec {
		if qEng, err = o.Engine(ctx, qSpec); err != nil {
			return nil, err
		}
	}
	t0 := time.Now()
	dbImgs := make([]Image, len(ds.Database))
	for i, it := range ds.Database {
		dbImgs[i] = it.Image
	}
	var proj *project.Projection
	var vecs [][]float32
	var failed int
	if c.projected() {
		vecs, failed, proj, err = embedProjected(ctx, dbEng, dbImgs, c, o, regions)
		if proj != nil {
			vs.model += "+" + proj.Name()
		}
	} else {
		vecs, failed, err = embedImages(ctx, dbEng, dbImgs, c, o, "embed database", imageReq{})
	}
	if err != nil {
		return nil, err
	}
	vs.failed += failed
	for i, it := range ds.Database {
		if vecs[i] != nil {
			vs.db[it.ID] = vecs[i]
		}
	}
	vs.images = len(dbImgs)
	var qImgs []Image
	var qIdx []int
	for i, q := range ds.Queries {
		if q.Self == "" {
			qImgs = append(qImgs, q.Image)
			qIdx = append(qIdx, i)
		}
	}
	if len(qImgs) > 0 {
		qv, failed, err := embedImages(ctx, qEng, qImgs, c, o, "embed queries", imageReq{proj: proj})
		if err != nil {
			return nil, err
		}
		vs.failed += failed
		for j, i := range qIdx {
			if qv[j] != nil {
				vs.queries[ds.Queries[i].ID] = qv[j]
			}
		}
		vs.images += len(qImgs)
	}
	vs.embedS = time.Since(t0).Seconds()
	return vs, nil
}

// imageReq asks embedImages for more than vectors: with onRegions, each image's regional vectors
// (embed.Image.Regions) are handed to it; with proj, regions are whitened inside the engine.
type imageReq struct {
	onRegions func(i int, regions []float32, counts []int)
	proj      *project.Projection
}

// embedImages embeds in batches, reading the next batch's files while the engine works. Failed
// images get a nil vector.
func embedImages(ctx context.Context, eng Embedder, imgs []Image, c Config, o Options, stage string, req imageReq) ([][]float32, int, error) {
	out := make([][]float32, len(imgs))
	failed := 0
	load := func(lo, hi int) ([]embed.Image, []error) {
		batch := make([]embed.Image, hi-lo)
		errs := make([]error, hi-lo)
		for i := lo; i < hi; i++ {
			data, err := imgs[i].load()
			errs[i-lo] = err
			batch[i-lo] = embed.Image{Data: data, Crop: clampCrop(data, imgs[i].Crop), Profile: c.Profile,
				Regions: req.onRegions != nil, Projection: req.proj}
		}
		return batch, errs
	}
	type loaded struct {
		batch []embed.Image
		errs  []error
	}
	next := make(chan loaded, 1)
	go func() {
		defer close(next)
		for lo := 0; lo < len(imgs); lo += o.Batch {
			b, e := load(lo, min(lo+o.Batch, len(imgs)))
			select {
			case next <- loaded{b, e}:
			case <-ctx.Done():
				return
			}
		}
	}()
	done := 0
	for l := range next {
		var todo []embed.Image
		var pos []int
		for i, e := range l.errs {
			if e != nil {
				failed++
				o.Logger.Warn("eval: unreadable image", "err", e)
				continue
			}
			todo = append(todo, l.batch[i])
			pos = append(pos, done+i)
		}
		res, err := eng.Embed(ctx, todo)
		if err != nil {
			for range next {
			}
			return nil, 0, fmt.Errorf("eval: embed: %w", err)
		}
		for j, e := range res {
			if e.Err != nil {
				failed++
				o.Logger.Warn("eval: image not embedded", "err", e.Err)
				continue
			}
			v := e.Vector
			if c.Pool == "gem" {
				if v, err = gem(e.FeatureMap, e.FeatureMapShape, c.GeMP); err != nil {
					return nil, 0, err
				}
			}
			out[pos[j]] = v
			if req.onRegions != nil {
				req.onRegions(pos[j], e.Regions, e.RegionCounts)
			}
		}
		done += len(l.batch)
		if o.Progress != nil {
			o.Progress(stage, done, len(imgs))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	return out, failed, nil
}

// regionSet is the regional vectors of a sample of database photos under one profile: rows of in
// values back to back, photo i's from off[i], counts[i] per scale.
type regionSet struct {
	sample []Image
	flat   []float32
	off    []int
	counts [][]int
	vecs   [][]float32 // the photos' vectors without projection (nil: failed)
	failed int
	in     int
}

// embedProjected learns c.Project's PCA-whitening from the regional vectors of the database
// images (at most o.ProjectSample of them, at an even stride; never labels or queries) and returns
// the database vectors under it. When the sample is the whole database, one pass keeps every
// image's regions and pools them here; otherwise the sample is embedded for its regions, then the
// database again through the projection. Projections of one profile share the regions (cache).
func embedProjected(ctx context.Context, eng Embedder, imgs []Image, c Config, o Options, cache map[string]*regionSet) ([][]float32, int, *project.Projection, error) {
	po, _, err := project.ParseName(c.Project)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	rs := cache[c.Profile]
	if rs == nil {
		if rs, err = embedRegions(ctx, eng, imgs, c, o); err != nil {
			return nil, 0, nil, err
		}
		cache[c.Profile] = rs
	}
	t1 := time.Now()
	proj, err := project.Learn(rs.flat, rs.in, po)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("eval: learn %s: %w", c.Project, err)
	}
	o.Logger.Info("eval: projection learned", "projection", proj.Name(), "power", proj.Power, "photos", len(rs.sample),
		"regions", len(rs.flat)/rs.in, "learn_s", time.Since(t1).Seconds())
	if len(rs.sample) < len(imgs) {
		vecs, failed, err := embedImages(ctx, eng, imgs, c, o, "embed database", imageReq{proj: proj})
		return vecs, failed, proj, err
	}
	scratch := make([]float32, 2*proj.Dims)
	vecs := make([][]float32, len(rs.vecs))
	for i, v := range rs.vecs {
		if v == nil {
			continue
		}
		out := make([]float32, proj.Dims)
		if err := proj.Pool(out, rs.flat[rs.off[i]:rs.off[i]+sumInts(rs.counts[i])*rs.in], rs.counts[i], scratch); err != nil {
			return nil, 0, nil, fmt.Errorf("eval: %w", err)
		}
		vecs[i] = out
	}
	return vecs, rs.failed, proj, nil
}

// embedRegions embeds up to o.ProjectSample database photos (an even stride) for their regions.
func embedRegions(ctx context.Context, eng Embedder, imgs []Image, c Config, o Options) (*regionSet, error) {
	limit := o.ProjectSample
	if limit <= 0 {
		limit = DefaultProjectSample
	}
	rs := &regionSet{sample: imgs}
	if len(imgs) > limit {
		rs.sample = make([]Image, limit)
		for i := range rs.sample {
			rs.sample[i] = imgs[i*len(imgs)/limit]
		}
	}
	rs.off = make([]int, len(rs.sample))
	rs.counts = make([][]int, len(rs.sample))
	keep := func(i int, regions []float32, counts []int) {
		if len(counts) > 0 {
			rs.in = len(regions) / sumInts(counts)
		}
		rs.off[i], rs.counts[i] = len(rs.flat), counts
		rs.flat = append(rs.flat, regions...)
	}
	var err error
	rs.vecs, rs.failed, err = embedImages(ctx, eng, rs.sample, c, o, "embed regions", imageReq{onRegions: keep})
	if err != nil {
		return nil, err
	}
	if rs.in == 0 {
		return nil, fmt.Errorf("%w: projection %s: no regional vectors (it needs a regional profile)", ErrConfig, c.Project)
	}
	return rs, nil
}

func sumInts(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// clampCrop keeps a crop inside the image: ground-truth rectangles rescaled to smaller photos can
// overhang by a pixel.
func clampCrop(data []byte, r *embed.Rect) *embed.Rect {
	if r == nil {
		return nil
	}
	cfg, err := embed.DecodeConfig(data)
	if err != nil {
		return r
	}
	c := *r
	c.X, c.Y = max(c.X, 0), max(c.Y, 0)
	c.W = min(c.W, cfg.Width-c.X)
	c.H = min(c.H, cfg.Height-c.Y)
	return &c
}

// gem is generalised-mean pooling of a [C,H,W] map, L2-normalised: (mean x^p)^(1/p) per channel.
func gem(fm []float32, shape [3]int, p float64) ([]float32, error) {
	if p <= 0 {
		p = 3
	}
	ch, hw := shape[0], shape[1]*shape[2]
	if ch == 0 || len(fm) != ch*hw {
		return nil, fmt.Errorf("%w: gem pooling needs the feature map (model spec feature_map_tensor)", ErrConfig)
	}
	out := make([]float32, ch)
	var norm float64
	for c := range ch {
		var s float64
		for _, x := range fm[c*hw : (c+1)*hw] {
			s += math.Pow(max(float64(x), 1e-6), p)
		}
		v := math.Pow(s/float64(hw), 1/p)
		out[c] = float32(v)
		norm += v * v
	}
	norm = math.Sqrt(norm)
	if norm == 0 {
		return nil, fmt.Errorf("%w: gem pooling: zero feature map", ErrConfig)
	}
	for i := range out {
		out[i] = float32(float64(out[i]) / norm)
	}
	return out, nil
}
