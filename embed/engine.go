package embed

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lookalike/lookalike/embed/project"
	"github.com/lookalike/lookalike/embed/spec"
	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"
)

// Options configure New. Zero values pick the defaults documented per field. Every path is used as
// given: embed reads no environment and searches no folders (the command resolves names with
// internal/locate).
type Options struct {
	// Model is the model and its preprocessing; zero value = spec.DefaultModel().
	Model spec.Model
	// ModelPath is the model file to load; "" = Model.File, as a path.
	ModelPath string
	// LabelsPath is the class-names file, read when Model.LogitsOutput is set; "" = Model.LabelsFile,
	// as a path (no labels when that is empty too).
	LabelsPath string
	// RuntimeLibrary is the ONNX Runtime shared library; "" = DefaultRuntimeLibrary, left to the
	// system loader.
	RuntimeLibrary string
	// Device is "auto" (CUDA if usable, else CPU, logged once), "cpu" or "cuda" (ErrNoGPU without a
	// GPU). "" = "cpu".
	Device       string
	CUDADeviceID int
	// Workers is the number of inference sessions (one goroutine each; sessions are not shared).
	// 0 = 1 on CUDA, GOMAXPROCS on CPU. On 2 cores, 2 sessions x 1 thread beat 1 session x 2
	// threads end to end (198 vs 110 images/s), and batch 1 beat batch 4 and 8 in ratio.
	Workers int
	// IntraOpThreads per session; 0 = max(1, GOMAXPROCS/(Workers*PoolShare)) on CPU, 1 on CUDA.
	IntraOpThreads int
	// PoolShare is how many engines share the session pool (one per model: docs/lifecycle.md); 0
	// or 1 = this engine alone. With Workers 0 the engine takes its share of the default pool
	// (GOMAXPROCS/PoolShare sessions on CPU, at least one), and the default IntraOpThreads counts
	// the sessions of every engine, so the threads of all of them stay within the cores.
	PoolShare int
	// MaxBatch caps how many queued images (from any callers) one session run takes; 0 =
	// DefaultMaxBatchCPU or DefaultMaxBatchCUDA.
	MaxBatch int
	// MaxBatchWait is how long a worker holding fewer than MaxBatch images waits for more; 0 = no
	// wait on CPU, DefaultMaxBatchWaitCUDA on CUDA.
	MaxBatchWait time.Duration
	// MaxPixels refuses larger images from their header (ErrTooLarge); 0 = spec.DefaultMaxPixels.
	MaxPixels int64
	// MaxAspectRatio refuses images whose longer side exceeds this many times the shorter one, from
	// their header (ErrAspectRatio); 0 = spec.DefaultMaxAspectRatio.
	MaxAspectRatio float64
	// Profile is the default descriptor profile (Image.Profile ""): a spec.ParseProfile name; "" =
	// Model.Profile, else fast. Regional profiles need Model.FeatureMapTensor.
	Profile string
	// DecodeWorkers bounds concurrent decodes across all callers; 0 = GOMAXPROCS+1 (one more than
	// the cores: inference workers sit in long cgo calls, and an extra decoder keeps a core busy
	// while the runtime hands a P back; measured +20-30% end to end on 2 cores).
	DecodeWorkers int
	// Logger receives startup and fallback lines; nil = discard.
	Logger *slog.Logger
}

// Defaults of the engine's zero-valued Options.
const (
	// DefaultRuntimeLibrary is the ONNX Runtime soname handed to the system loader when
	// Options.RuntimeLibrary is empty.
	DefaultRuntimeLibrary = "libonnxruntime.so.1"
	// DefaultMaxBatchCPU: batch 1 was the fastest measured on 2 cores (see Options.Workers).
	DefaultMaxBatchCPU = 1
	// DefaultMaxBatchCUDA and DefaultMaxBatchWaitCUDA let concurrent requests share GPU runs (not
	// measured here: no GPU on the development machines).
	DefaultMaxBatchCUDA     = 32
	DefaultMaxBatchWaitCUDA = 2 * time.Millisecond
	// queuePerSlot sizes the job queue: this many prepared images per batch slot of every worker
	// may wait for a session; more callers wait to enqueue.
	queuePerSlot = 4
	// topLabels is how many ImageNet classes an Embedding reports.
	topLabels = 5
	// maxReason caps the cause quoted in the CUDA fallback's log line.
	maxReason = 120
)

// Info describes a running Engine.
type Info struct {
	ModelID     string     `json:"model_id"`
	Fingerprint string     `json:"fingerprint"`
	Dims        int        `json:"dims"`
	Device      string     `json:"device"` // "cpu" or "cuda"
	Spec        spec.Model `json:"spec"`
	ModelPath   string     `json:"model_path"`
	ModelSHA256 string     `json:"model_sha256"`
	Workers     int        `json:"workers"`
	IntraOp     int        `json:"intra_op_threads"`
	MaxBatch    int        `json:"max_batch"`
	// Profile is the default profile, whose vectors Fingerprint names; Profiles lists the named
	// profiles this engine serves (others of the rmac:... form are served on request).
	Profile  string        `json:"profile"`
	Profiles []ProfileInfo `json:"profiles"`
	// Projection names the learned projection every image is passed through ("" = none; the
	// engine itself never sets it: a collection's projection binds it, lifecycle.WithFingerprint).
	Projection string `json:"projection,omitempty"`
}

// Image is one input: encoded bytes, an optional crop in pixels of the EXIF-oriented image, and the
// descriptor profile ("" = the engine's default, Options.Profile). A collection's images and
// queries must use the profile of its fingerprint (Info.ProfileFor).
type Image struct {
	Data    []byte
	Crop    *Rect
	Profile string
	// Projection, for a regional profile, whitens each region before R-MAC sums them
	// (project.Projection.Pool does the same from Regions): the vector is Projection.Dims long.
	// Its profile must be the one it was learned under; nil = none.
	Projection *project.Projection
	// Regions, for a regional profile, returns each region's L2-normalised vector (before any
	// projection) in Embedding.Regions: what a projection is learned from.
	Regions bool
}

// Embedding is one result. On a per-image failure only Err (typed: ErrCorrupt, ErrTooLarge, ...)
// is set.
type Embedding struct {
	Vector []float32 // L2-normalised, Info().Dims long
	Labels []Label   // top-5 classes with softmax probabilities (nil without LogitsOutput)
	// Width, Height: the EXIF-oriented size of the whole image.
	Width, Height int
	Timings       Timings
	// FeatureMap is the dequantized [C,H,W] map of spec.Model.FeatureMapTensor (nil when unset, and
	// for regional profiles).
	FeatureMap      []float32
	FeatureMapShape [3]int
	// Regions (with Image.Regions) holds every region's L2-normalised vector of the feature map,
	// C values each, scale after scale (largest first), RegionCounts[k] of them for scale k.
	Regions      []float32
	RegionCounts []int
	// Batch is how many images (from any callers) shared the inference run (the largest of a
	// regional profile's runs; Timings.Inference is the sum of its runs).
	Batch int
	Err   error
}

// Label is an ImageNet class.
type Label struct {
	Index int     `json:"index"`
	Name  string  `json:"name"`
	Prob  float32 `json:"prob"`
}

// Timings of one image. Inference is the duration of the batch run that included it.
type Timings struct {
	Decode, Preprocess, Inference time.Duration
}

// Engine embeds images. It is safe for concurrent use; concurrent callers share the session pool
// and, with MaxBatch > 1, batches.
type Engine struct {
	opts   Options
	spec   spec.Model
	limits limits                     // per-image header checks, from Options
	want   func(Config, Rect) float64 // wantScale(spec)
	profs  *profiles
	info   Info
	labels []string
	log    *slog.Logger

	outputs   []string // graph outputs requested from every session, embedding first
	logitsIdx int      // index in outputs, -1 if none
	fmapIdx   int

	sessions []*ort.DynamicAdvancedSession
	queue    chan *job
	stop     chan struct{}
	wg       sync.WaitGroup
	decSem   chan struct{}
	bufs     sync.Pool

	mu     sync.RWMutex
	closed bool
}

var ortEnv struct {
	sync.Mutex
	refs int
	lib  string
}

func acquireORT(lib string) error {
	ortEnv.Lock()
	defer ortEnv.Unlock()
	if ortEnv.refs > 0 {
		if lib != ortEnv.lib {
			return fmt.Errorf("%w: already loaded from %s, cannot switch to %s", ErrRuntime, ortEnv.lib, lib)
		}
		ortEnv.refs++
		return nil
	}
	if !ort.IsInitialized() {
		ort.SetSharedLibraryPath(lib)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrRuntime, lib, err)
		}
	}
	ortEnv.refs, ortEnv.lib = 1, lib
	return nil
}

func releaseORT() {
	ortEnv.Lock()
	defer ortEnv.Unlock()
	ortEnv.refs--
	if ortEnv.refs == 0 {
		_ = ort.DestroyEnvironment()
	}
}

// New loads the runtime and the model (checking its checksum and input shape), exposes the
// embedding tensor, creates the session pool and runs one warm-up batch per session.
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Model == (spec.Model{}) {
		opts.Model = spec.DefaultModel()
	}
	ms := opts.Model
	if err := ms.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModel, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dev := strings.ToLower(opts.Device)
	switch dev {
	case "":
		dev = "cpu"
	case "cpu", "cuda", "auto":
	default:
		return nil, fmt.Errorf("embed: device %q: must be auto, cpu or cuda", opts.Device)
	}
	if opts.MaxPixels <= 0 {
		opts.MaxPixels = spec.DefaultMaxPixels
	}
	if opts.MaxAspectRatio <= 0 {
		opts.MaxAspectRatio = spec.DefaultMaxAspectRatio
	}
	def, err := spec.ParseProfile(cmp.Or(opts.Profile, ms.Profile))
	if err == nil {
		err = ms.CheckProfile(def)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProfile, err)
	}
	e := &Engine{opts: opts, spec: ms, log: log, logitsIdx: -1, fmapIdx: -1,
		limits: limits{pixels: opts.MaxPixels, aspect: opts.MaxAspectRatio}, want: wantScale(ms),
		profs: &profiles{def: def, spec: ms}}
	onnxData, path, sum, err := e.loadModel()
	if err != nil {
		return nil, err
	}
	lib := opts.RuntimeLibrary
	if lib == "" {
		lib = DefaultRuntimeLibrary
	}
	if err := acquireORT(lib); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			e.destroySessions()
			releaseORT()
		}
	}()
	cores := runtime.GOMAXPROCS(0)
	useCUDA, err := e.startSessions(ctx, onnxData, dev, cores)
	if err != nil {
		return nil, err
	}
	device := "cpu"
	if useCUDA {
		device = "cuda"
	}
	e.info = Info{ModelID: ms.ID, Fingerprint: ms.ProfileFingerprint(sum, def), Dims: ms.EmbeddingDim, Device: device,
		Spec: ms, ModelPath: path, ModelSHA256: sum, Workers: e.opts.Workers, IntraOp: e.opts.IntraOpThreads,
		MaxBatch: e.opts.MaxBatch, Profile: def.Name}
	for _, name := range spec.ProfileNames() {
		if p, fp, err := e.info.ProfileFingerprint(name); err == nil {
			e.info.Profiles = append(e.info.Profiles, ProfileInfo{Name: p.Name, Fingerprint: fp, Scales: p.Scales})
		}
	}
	dw := e.opts.DecodeWorkers
	if dw <= 0 {
		dw = cores + 1
	}
	e.decSem = make(chan struct{}, dw)
	e.queue = make(chan *job, queuePerSlot*e.opts.Workers*e.opts.MaxBatch)
	e.stop = make(chan struct{})
	n := ms.TensorLen()
	e.bufs.New = func() any { b := make([]float32, n); return &b }
	for i := range e.sessions {
		e.wg.Add(1)
		go e.worker(e.sessions[i])
	}
	ok = true
	log.Info("embed: engine ready", "model", path, "fingerprint", e.info.Fingerprint, "profile", def.Name, "device", device,
		"workers", e.opts.Workers, "intra_op_threads", e.opts.IntraOpThreads, "max_batch", e.opts.MaxBatch)
	return e, nil
}

// loadModel reads and checks the model file and the labels, exposes the embedding (and the optional
// feature map) as graph outputs and returns the edited graph with the file's path and sha256.
func (e *Engine) loadModel() (onnxData []byte, path, sum string, err error) {
	ms := e.spec
	path = e.opts.ModelPath
	if path == "" {
		path = ms.File
	}
	m, sum, _, err := readModel(path)
	if err != nil {
		return nil, "", "", err
	}
	if sums := ms.Checksums(); len(sums) > 0 && !slices.Contains(sums, sum) {
		return nil, "", "", fmt.Errorf("%w: %s has sha256 %s, want %s", ErrModel, path, sum, strings.Join(sums, " or "))
	}
	if err := checkInput(m, ms); err != nil {
		return nil, "", "", err
	}
	if lp := cmp.Or(e.opts.LabelsPath, ms.LabelsFile); lp != "" && ms.LogitsOutput != "" {
		if e.labels, err = readLabels(lp); err != nil {
			return nil, "", "", fmt.Errorf("%w: labels: %v", ErrModel, err)
		}
	}
	if err := expose(m, ms.EmbeddingTensor, outEmbedding, true); err != nil {
		return nil, "", "", err
	}
	e.outputs = []string{outEmbedding}
	if ms.LogitsOutput != "" {
		found := false
		for _, o := range m.GetGraph().GetOutput() {
			found = found || o.GetName() == ms.LogitsOutput
		}
		if !found {
			return nil, "", "", fmt.Errorf("%w: logits output %q is not a graph output", ErrModel, ms.LogitsOutput)
		}
		e.logitsIdx = len(e.outputs)
		e.outputs = append(e.outputs, ms.LogitsOutput)
	}
	if ms.FeatureMapTensor != "" {
		if err := expose(m, ms.FeatureMapTensor, outFeatureMap, false); err != nil {
			return nil, "", "", err
		}
		e.fmapIdx = len(e.outputs)
		e.outputs = append(e.outputs, outFeatureMap)
		// regional profiles feed whole photos at their own size
		if err := makeSpatialSymbolic(m, ms.Input, ms.Layout); err != nil {
			return nil, "", "", err
		}
	}
	if onnxData, err = proto.Marshal(m); err != nil {
		return nil, "", "", fmt.Errorf("%w: marshal edited graph: %v", ErrModel, err)
	}
	return onnxData, path, sum, nil
}

// startSessions creates the session pool on the device and warms it up. With device "auto" a CUDA
// failure falls back to the CPU with one short INFO line (a CPU-only machine is normal, not a fault).
func (e *Engine) startSessions(ctx context.Context, onnxData []byte, dev string, cores int) (useCUDA bool, err error) {
	useCUDA = dev == "cuda" || dev == "auto"
	asked := e.opts // applyDefaults fills per device; a fallback starts again from what was asked
	for {
		e.applyDefaults(useCUDA, cores)
		err = e.createSessions(onnxData, useCUDA)
		if err == nil {
			err = e.warmUp(ctx)
		}
		if err == nil {
			return useCUDA, nil
		}
		e.destroySessions()
		if useCUDA && dev == "auto" && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			e.log.Info("embed: no GPU: using CPU", "reason", shortReason(err))
			useCUDA = false
			e.opts = asked
			continue
		}
		if useCUDA && !errors.Is(err, ErrNoGPU) {
			return false, fmt.Errorf("%w: %w", ErrNoGPU, err)
		}
		return false, err
	}
}

func (e *Engine) applyDefaults(cuda bool, cores int) {
	o := &e.opts
	share := max(o.PoolShare, 1)
	if o.Workers <= 0 {
		o.Workers = max(1, cores/share)
		if cuda {
			o.Workers = 1
		}
	}
	if o.IntraOpThreads <= 0 {
		o.IntraOpThreads = max(1, cores/(o.Workers*share))
		if cuda {
			o.IntraOpThreads = 1
		}
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatchCPU
		if cuda {
			o.MaxBatch = DefaultMaxBatchCUDA
		}
	}
	if o.MaxBatchWait <= 0 && cuda {
		o.MaxBatchWait = DefaultMaxBatchWaitCUDA
	}
}

func (e *Engine) createSessions(onnxData []byte, cuda bool) error {
	for i := 0; i < e.opts.Workers; i++ {
		so, err := ort.NewSessionOptions()
		if err != nil {
			return fmt.Errorf("%w: session options: %v", ErrRuntime, err)
		}
		err = func() error {
			defer so.Destroy()
			if err := so.SetIntraOpNumThreads(e.opts.IntraOpThreads); err != nil {
				return err
			}
			if err := so.SetInterOpNumThreads(1); err != nil {
				return err
			}
			if cuda {
				co, err := ort.NewCUDAProviderOptions()
				if err != nil {
					return fmt.Errorf("%w: %v", ErrNoGPU, err)
				}
				defer co.Destroy()
				if err := co.Update(map[string]string{"device_id": fmt.Sprint(e.opts.CUDADeviceID)}); err != nil {
					return fmt.Errorf("%w: %v", ErrNoGPU, err)
				}
				if err := so.AppendExecutionProviderCUDA(co); err != nil {
					return fmt.Errorf("%w: %v", ErrNoGPU, err)
				}
			}
			s, err := ort.NewDynamicAdvancedSessionWithONNXData(onnxData, []string{e.spec.Input}, e.outputs, so)
			if err != nil {
				return fmt.Errorf("%w: create session: %v", ErrModel, err)
			}
			e.sessions = append(e.sessions, s)
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) destroySessions() {
	for _, s := range e.sessions {
		_ = s.Destroy()
	}
	e.sessions = nil
}

// warmUp runs one dummy batch per session so the first request does not pay for ORT's lazy
// initialisation, and checks the output sizes against the spec. With a feature map it also runs
// one non-square size, so a graph that cannot take other sizes (regional profiles) fails here.
func (e *Engine) warmUp(ctx context.Context) error {
	S := e.spec.InputSize
	sizes := [][2]int{{S, S}}
	if e.fmapIdx >= 0 {
		sizes = append(sizes, [2]int{S + 32, S - 32})
	}
	var pool rmacPool
	for _, s := range e.sessions {
		for _, wh := range sizes {
			if err := ctx.Err(); err != nil {
				return err
			}
			bs := e.opts.MaxBatch
			r, err := e.infer(s, make([]float32, bs*3*wh[0]*wh[1]), bs, wh[0], wh[1])
			if err != nil {
				return err
			}
			j := &job{out: &Embedding{}}
			if wh[0] != S {
				j.levels, j.vec = spec.RMACLevels, make([]float32, e.spec.EmbeddingDim)
			}
			err = e.fill(&r, 0, j, &pool)
			r.release()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *Engine) getBuf() []float32  { return *(e.bufs.Get().(*[]float32)) }
func (e *Engine) putBuf(b []float32) { e.bufs.Put(&b) }

// Embed embeds imgs, each under its Image.Profile. Per-image failures land in Embedding.Err; the
// returned error is only for a cancelled context or a closed engine.
func (e *Engine) Embed(ctx context.Context, imgs []Image) ([]Embedding, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, ErrClosed
	}
	res := make([]Embedding, len(imgs))
	profs := make([]spec.Profile, len(imgs))
	jobs := 0
	for i, img := range imgs {
		p, err := e.profs.resolve(img.Profile)
		if err == nil && img.Projection != nil && (!p.Regional() || img.Projection.In != e.spec.EmbeddingDim) {
			err = fmt.Errorf("%w: a projection of %d-d regions needs a regional profile of a %d-d model, not %s", ErrProfile, img.Projection.In, e.spec.EmbeddingDim, p.Name)
		}
		if err != nil {
			res[i].Err = err
			continue
		}
		profs[i] = p
		jobs += max(1, len(p.Scales))
	}
	// Workers answer every job on done without blocking: it holds them all.
	done := make(chan struct{}, jobs)
	parts := make([][]Embedding, len(imgs)) // a regional image's scales
	pending := 0
	var wg sync.WaitGroup
	var submitted = make(chan int, len(imgs))
	for i := range imgs {
		if res[i].Err != nil {
			continue
		}
		select {
		case e.decSem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, ctx.Err()
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			submitted <- e.submit(ctx, imgs[i], profs[i], &res[i], &parts[i], done)
		}(i)
	}
	wg.Wait()
	close(submitted)
	for s := range submitted {
		pending += s
	}
	for ; pending > 0; pending-- {
		// Workers always answer queued jobs (the engine cannot close while we hold the read lock),
		// so waiting here is bounded by the queue length.
		<-done
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range res {
		if parts[i] != nil && res[i].Err == nil {
			combineScales(&res[i], parts[i])
		}
	}
	return res, nil
}

// submit prepares one image (holding a decode slot, which it gives back) and queues its jobs: one
// for the fast profile, one per scale for a regional one, whose results land in *parts. It returns
// how many jobs were queued; an image that cannot be prepared or queued gets out.Err.
func (e *Engine) submit(ctx context.Context, img Image, p spec.Profile, out *Embedding, parts *[]Embedding, done chan<- struct{}) int {
	if !p.Regional() {
		t, ok := e.prepare(img, out)
		<-e.decSem
		S := e.spec.InputSize
		if !ok || !e.enqueue(ctx, &job{tensor: t, w: S, h: S, out: out, done: done}) {
			return 0
		}
		return 1
	}
	D := e.spec.EmbeddingDim
	if img.Projection != nil {
		D = img.Projection.Dims
	}
	ps := make([]Embedding, len(p.Scales))
	vecs := make([]float32, len(p.Scales)*D)
	n := 0
	e.prepareScales(img, p, out, func(k int, sj scaleJob) bool {
		j := &job{tensor: sj.tensor, w: sj.w, h: sj.h, levels: p.Levels, vec: vecs[k*D : (k+1)*D : (k+1)*D],
			pooled: true, out: &ps[k], done: done, proj: img.Projection, regions: img.Regions}
		if !e.enqueue(ctx, j) {
			out.Err = ctx.Err()
			return false
		}
		n++
		return true
	})
	<-e.decSem
	if n == len(ps) {
		*parts = ps
	}
	return n
}

// enqueue hands j to the workers, or releases its tensor when ctx ends first.
func (e *Engine) enqueue(ctx context.Context, j *job) bool {
	select {
	case e.queue <- j:
		return true
	case <-ctx.Done():
		e.releaseTensor(j)
		j.out.Err = ctx.Err()
		return false
	}
}

// EmbedTensors embeds input tensors the caller prepared (each Info().Spec.TensorLen() values, laid
// out and normalised per the spec), skipping decoding and preprocessing: for baselines that make
// tensors their own way and for timing inference alone (internal/bench). The tensors are copied;
// errors as Embed.
func (e *Engine) EmbedTensors(ctx context.Context, tensors [][]float32) ([]Embedding, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, ErrClosed
	}
	n := e.spec.TensorLen()
	res := make([]Embedding, len(tensors))
	done := make(chan struct{}, len(tensors))
	pending := 0
submit:
	for i, t := range tensors {
		if len(t) != n {
			res[i].Err = fmt.Errorf("embed: tensor %d has %d values, the model takes %d", i, len(t), n)
			continue
		}
		buf := e.getBuf()
		copy(buf, t)
		select {
		case e.queue <- &job{tensor: buf, w: e.spec.InputSize, h: e.spec.InputSize, out: &res[i], done: done}:
			pending++
		case <-ctx.Done():
			e.putBuf(buf)
			break submit
		}
	}
	for ; pending > 0; pending-- {
		<-done // bounded as in Embed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// prepare decodes and preprocesses one image into a pooled tensor buffer.
func (e *Engine) prepare(img Image, out *Embedding) ([]float32, bool) {
	t0 := time.Now()
	d, err := decodeImage(img.Data, img.Crop, e.limits, e.want)
	t1 := time.Now()
	out.Width, out.Height = d.cfg.Width, d.cfg.Height
	out.Timings.Decode = t1.Sub(t0)
	if err != nil {
		out.Err = err
		return nil, false
	}
	buf := e.getBuf()
	preprocessInto(e.spec, buf, d)
	d.release()
	out.Timings.Preprocess = time.Since(t1)
	return buf, true
}

// Info describes the engine.
func (e *Engine) Info() Info { return e.info }

// Close waits for in-flight Embed calls, stops the workers and frees the sessions.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	close(e.stop)
	e.wg.Wait()
	e.destroySessions()
	releaseORT()
	return nil
}

func l2normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
}

// topK returns the k most probable classes under a softmax of logits.
func topK(logits []float32, names []string, k int) []Label {
	mx := float32(math.Inf(-1))
	for _, x := range logits {
		mx = max(mx, x)
	}
	var sum float64
	for _, x := range logits {
		sum += math.Exp(float64(x - mx))
	}
	k = min(k, len(logits))
	top := make([]Label, 0, k+1)
	for i, x := range logits {
		if len(top) == k && x <= logits[top[k-1].Index] {
			continue
		}
		l := Label{Index: i}
		j := len(top)
		top = append(top, l)
		for j > 0 && logits[top[j-1].Index] < x {
			top[j] = top[j-1]
			j--
		}
		top[j] = l
		if len(top) > k {
			top = top[:k]
		}
	}
	for i := range top {
		top[i].Prob = float32(math.Exp(float64(logits[top[i].Index]-mx)) / sum)
		if top[i].Index < len(names) {
			top[i].Name = names[top[i].Index]
		}
	}
	return top
}

func readLabels(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, strings.TrimSpace(sc.Text()))
	}
	return out, sc.Err()
}

// shortReason boils a session-creation error down to its cause for one short log line: ONNX
// Runtime's messages carry a source location and absolute paths (400 characters for a missing
// CUDA provider library), so keep the text after its last "FAIL :" or "with error:", file names
// instead of paths, at most maxReason bytes.
func shortReason(err error) string {
	s := err.Error()
	for _, mark := range []string{": FAIL : ", "with error: "} {
		if i := strings.LastIndex(s, mark); i >= 0 {
			s = s[i+len(mark):]
		}
	}
	words := strings.Fields(s)
	for i, w := range words {
		if strings.Contains(w, "/") {
			words[i] = filepath.Base(w)
		}
	}
	s = strings.Join(words, " ")
	if len(s) > maxReason {
		s = strings.ToValidUTF8(s[:maxReason], "") + "..."
	}
	return s
}
