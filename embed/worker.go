package embed

import (
	"fmt"
	"time"

	"github.com/lookalike/lookalike/embed/project"
	ort "github.com/yalue/onnxruntime_go"
)

// job is one image (or one scale of a regional image) waiting for a session.
type job struct {
	tensor []float32
	w, h   int // input size; batches only join jobs of one size
	// levels > 0: the vector is the R-MAC (levels levels) of the feature map, written into vec;
	// otherwise it is the model's embedding, allocated into out.Vector.
	levels int
	vec    []float32
	// proj, when set, whitens each region before the sum (vec is proj.Dims long); regions keeps
	// each region's vector in out.Regions.
	proj    *project.Projection
	regions bool
	// pooled: tensor came from floatPool (regional scales), not the engine's fixed-size bufs.
	pooled bool
	out    *Embedding
	done   chan<- struct{}
}

// release hands the job's tensor back to the pool it came from.
func (e *Engine) releaseTensor(j *job) {
	if j.pooled {
		putFloats(j.tensor)
	} else {
		e.putBuf(j.tensor)
	}
}

// runOutputs are one inference run's outputs; the slices point into ONNX Runtime's memory and are
// valid until release.
type runOutputs struct {
	vals          []ort.Value
	emb, logits   []float32
	fmap          []float32
	fshape        [3]int // C, H, W of each image's feature map
	bs            int
	dt            time.Duration
	embDim, logit int
}

func (r *runOutputs) release() {
	for _, v := range r.vals {
		if v != nil {
			v.Destroy()
		}
	}
}

// infer runs a batch of bs images of w x h held in buf.
func (e *Engine) infer(s *ort.DynamicAdvancedSession, buf []float32, bs, w, h int) (runOutputs, error) {
	shape := ort.NewShape(int64(bs), 3, int64(h), int64(w))
	if e.spec.Layout == "NHWC" {
		shape = ort.NewShape(int64(bs), int64(h), int64(w), 3)
	}
	in, err := ort.NewTensor(shape, buf[:bs*3*w*h])
	if err != nil {
		return runOutputs{}, fmt.Errorf("embed: input tensor: %w", err)
	}
	defer in.Destroy()
	r := runOutputs{vals: make([]ort.Value, len(e.outputs)), bs: bs}
	t0 := time.Now()
	err = s.Run([]ort.Value{in}, r.vals)
	r.dt = time.Since(t0)
	if err != nil {
		r.release()
		return runOutputs{}, fmt.Errorf("embed: inference: %w", err)
	}
	floats := func(i int) ([]float32, error) {
		t, ok := r.vals[i].(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("%w: output %s is not float32", ErrModel, e.outputs[i])
		}
		d := t.GetData()
		if len(d)%bs != 0 {
			return nil, fmt.Errorf("%w: output %s has %d values for batch %d", ErrModel, e.outputs[i], len(d), bs)
		}
		return d, nil
	}
	fail := func(err error) (runOutputs, error) {
		r.release()
		return runOutputs{}, err
	}
	if r.emb, err = floats(0); err != nil {
		return fail(err)
	}
	if len(r.emb) != bs*e.spec.EmbeddingDim {
		return fail(fmt.Errorf("%w: embedding %s has %d values per image, spec says embedding_dim %d",
			ErrModel, e.spec.EmbeddingTensor, len(r.emb)/bs, e.spec.EmbeddingDim))
	}
	if e.logitsIdx >= 0 {
		if r.logits, err = floats(e.logitsIdx); err != nil {
			return fail(err)
		}
	}
	if e.fmapIdx >= 0 {
		if r.fmap, err = floats(e.fmapIdx); err != nil {
			return fail(err)
		}
		sh := r.vals[e.fmapIdx].GetShape()
		if len(sh) != 4 {
			return fail(fmt.Errorf("%w: feature map %s has shape %v, want [N,C,H,W]", ErrModel, e.spec.FeatureMapTensor, sh))
		}
		r.fshape = [3]int{int(sh[1]), int(sh[2]), int(sh[3])}
	}
	return r, nil
}

// fill writes image i of a run into j.out: the embedding (or, with j.levels > 0, the R-MAC vector
// of its feature map into j.vec, through pool), labels and, for the model's embedding, the feature
// map.
func (e *Engine) fill(r *runOutputs, i int, j *job, pool *rmacPool) error {
	out, levels, vec := j.out, j.levels, j.vec
	D := e.spec.EmbeddingDim
	out.Timings.Inference = r.dt
	out.Batch = r.bs
	if r.logits != nil {
		k := len(r.logits) / r.bs
		out.Labels = topK(r.logits[i*k:(i+1)*k], e.labels, topLabels)
	}
	var fm []float32
	if r.fmap != nil {
		k := len(r.fmap) / r.bs
		fm = r.fmap[i*k : (i+1)*k]
	}
	if levels > 0 {
		c, h, w := r.fshape[0], r.fshape[1], r.fshape[2]
		if fm == nil || c != e.spec.EmbeddingDim || (j.proj != nil && (j.proj.In != c || j.proj.Dims != len(vec))) {
			return fmt.Errorf("%w: regional profile: feature map %v does not give %d channels", ErrModel, r.fshape, len(vec))
		}
		var regs *[]float32
		if j.regions {
			regs = &out.Regions
		}
		n := pool.pool(vec, fm, h, w, levels, j.proj, regs)
		if j.regions {
			out.RegionCounts = []int{n}
		}
		out.Vector = vec
		return nil
	}
	v := make([]float32, D)
	copy(v, r.emb[i*D:(i+1)*D])
	l2normalize(v)
	out.Vector = v
	if fm != nil {
		out.FeatureMap = append([]float32(nil), fm...)
		out.FeatureMapShape = r.fshape
	}
	return nil
}

// worker serves one session: it takes a job, adds queued jobs of the same input size up to
// MaxBatch (waiting MaxBatchWait at most), runs them and answers each.
func (e *Engine) worker(s *ort.DynamicAdvancedSession) {
	defer e.wg.Done()
	n := e.spec.TensorLen()
	buf := make([]float32, e.opts.MaxBatch*n)
	batch := make([]*job, 0, e.opts.MaxBatch)
	var pool rmacPool
	var timer *time.Timer
	var carry *job // a job of another size, taken while filling: it starts the next batch
	for {
		batch = batch[:0]
		if carry != nil {
			batch, carry = append(batch, carry), nil
		} else {
			select {
			case <-e.stop:
				return
			case j := <-e.queue:
				batch = append(batch, j)
			}
		}
		batch, carry, timer = e.fillBatch(batch, timer)
		first := batch[0]
		in := first.tensor // no copy for the common CPU case
		if len(batch) > 1 {
			size := 3 * first.w * first.h
			if len(buf) < len(batch)*size {
				buf = make([]float32, len(batch)*size)
			}
			for i, j := range batch {
				copy(buf[i*size:(i+1)*size], j.tensor)
			}
			in = buf
		}
		r, err := e.infer(s, in, len(batch), first.w, first.h)
		for _, j := range batch {
			e.releaseTensor(j)
		}
		for i, j := range batch {
			if err == nil {
				j.out.Err = e.fill(&r, i, j, &pool)
			} else {
				j.out.Err = err
			}
			j.done <- struct{}{}
		}
		if err == nil {
			r.release()
		}
	}
}

// fillBatch adds queued jobs of batch[0]'s size to batch: what is queued, then, with MaxBatchWait,
// what arrives until one deadline counted from the first image (not per image: a trickle must not
// stretch the wait). A job of another size ends the batch and is returned as carry.
func (e *Engine) fillBatch(batch []*job, timer *time.Timer) ([]*job, *job, *time.Timer) {
	first := batch[0]
	armed := false
	defer func() {
		if armed {
			timer.Stop()
		}
	}()
	take := func(j *job) bool {
		if j.w != first.w || j.h != first.h {
			return false
		}
		batch = append(batch, j)
		return true
	}
	for len(batch) < e.opts.MaxBatch {
		select {
		case j := <-e.queue:
			if !take(j) {
				return batch, j, timer
			}
			continue
		default:
		}
		if e.opts.MaxBatchWait <= 0 {
			break
		}
		if !armed {
			if timer == nil {
				timer = time.NewTimer(e.opts.MaxBatchWait)
			} else {
				timer.Reset(e.opts.MaxBatchWait)
			}
			armed = true
		}
		select {
		case j := <-e.queue:
			if !take(j) {
				return batch, j, timer
			}
		case <-timer.C:
			armed = false
			return batch, nil, timer
		case <-e.stop:
			return batch, nil, timer
		}
	}
	return batch, nil, timer
}
