package eval

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/lookalike/lookalike/embed"
)

// Embedding a dataset: the database and query images of one preprocessing variant.

func embedVariant(ctx context.Context, ds *Dataset, c Config, o Options) (*vectorSet, error) {
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
	vecs, failed, err := embedImages(ctx, dbEng, dbImgs, c, o, "embed database")
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
		qv, failed, err := embedImages(ctx, qEng, qImgs, c, o, "embed queries")
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

// embedImages embeds in batches, reading the next batch's files while the engine works. Failed
// images get a nil vector.
func embedImages(ctx context.Context, eng Embedder, imgs []Image, c Config, o Options, stage string) ([][]float32, int, error) {
	out := make([][]float32, len(imgs))
	failed := 0
	load := func(lo, hi int) ([]embed.Image, []error) {
		batch := make([]embed.Image, hi-lo)
		errs := make([]error, hi-lo)
		for i := lo; i < hi; i++ {
			data, err := imgs[i].load()
			errs[i-lo] = err
			batch[i-lo] = embed.Image{Data: data, Crop: clampCrop(data, imgs[i].Crop), Profile: c.Profile}
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
