package embed

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	xdraw "golang.org/x/image/draw"
)

// BenchOptions configure Bench.
type BenchOptions struct {
	Engine Options
	// Files are the images (read into memory before timing).
	Files []string
	// Concurrency is the number of concurrent single-image Embed callers; 0 = 3*GOMAXPROCS.
	Concurrency int
	// MinDuration is how long each measurement runs at least (whole passes over Files); 0 = 3s.
	MinDuration time.Duration
	Logger      *slog.Logger
}

// BenchReport holds throughputs measured in one run on the same machine.
type BenchReport struct {
	Images        int     `json:"images"`
	ModelOnlyPerS float64 `json:"model_only_img_per_s"`
	EndToEndPerS  float64 `json:"end_to_end_img_per_s"`
	Ratio         float64 `json:"ratio"`
	GoStdlibPerS  float64 `json:"go_stdlib_img_per_s"`
	// SpeedupVsStdlib = EndToEndPerS / GoStdlibPerS.
	SpeedupVsStdlib float64 `json:"speedup_vs_stdlib"`
	Device          string  `json:"device"`
	Workers         int     `json:"workers"`
	IntraOpThreads  int     `json:"intra_op_threads"`
	MaxBatch        int     `json:"max_batch"`
	Concurrency     int     `json:"concurrency"`
	Failed          int     `json:"failed"`
}

// Bench measures, in one run: model-only images/s (inference alone on a prepared tensor, all
// sessions busy: the same cores the pipeline uses), end-to-end images/s (bytes in memory to
// embedding) and the same pipeline with Go's image/jpeg + x/image/draw in place of TurboJPEG and the
// tensor resampler.
func Bench(ctx context.Context, o BenchOptions) (BenchReport, error) {
	if len(o.Files) == 0 {
		return BenchReport{}, fmt.Errorf("embed: bench: no files")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.MinDuration <= 0 {
		o.MinDuration = 3 * time.Second
	}
	imgs := make([]Image, len(o.Files))
	for i, f := range o.Files {
		b, err := os.ReadFile(f)
		if err != nil {
			return BenchReport{}, fmt.Errorf("embed: bench: %w", err)
		}
		imgs[i] = Image{Data: b}
	}
	e, err := New(ctx, o.Engine)
	if err != nil {
		return BenchReport{}, err
	}
	defer e.Close()
	conc := o.Concurrency
	if conc <= 0 {
		conc = 3 * runtime.GOMAXPROCS(0)
	}
	rep := BenchReport{Images: len(imgs), Device: e.info.Device, Workers: e.opts.Workers,
		IntraOpThreads: e.opts.IntraOpThreads, MaxBatch: e.opts.MaxBatch, Concurrency: conc}

	// model only
	var tensor []float32
	var first Embedding
	for _, im := range imgs {
		if t, ok := e.prepare(im, &first); ok {
			tensor = t
			break
		}
	}
	if tensor == nil {
		return rep, fmt.Errorf("embed: bench: no file decodes: %w", first.Err)
	}
	if rep.ModelOnlyPerS, err = e.modelOnly(ctx, tensor, o.MinDuration); err != nil {
		return rep, err
	}
	log.Info("bench: model only", "img_per_s", rep.ModelOnlyPerS)

	if rep.EndToEndPerS, rep.Failed, err = pipelineRate(ctx, e, imgs, conc, o.MinDuration); err != nil {
		return rep, err
	}
	log.Info("bench: end to end", "img_per_s", rep.EndToEndPerS, "failed", rep.Failed)

	e.stdlib = true
	rate, _, err := pipelineRate(ctx, e, imgs, conc, o.MinDuration)
	e.stdlib = false
	if err != nil {
		return rep, err
	}
	rep.GoStdlibPerS = rate
	log.Info("bench: go stdlib pipeline", "img_per_s", rate)
	rep.Ratio = round3(rep.EndToEndPerS / rep.ModelOnlyPerS)
	rep.SpeedupVsStdlib = round3(rep.EndToEndPerS / rep.GoStdlibPerS)
	rep.ModelOnlyPerS, rep.EndToEndPerS, rep.GoStdlibPerS = round3(rep.ModelOnlyPerS), round3(rep.EndToEndPerS), round3(rep.GoStdlibPerS)
	return rep, nil
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// modelOnly runs every session on a prepared batch at once for at least d.
func (e *Engine) modelOnly(ctx context.Context, tensor []float32, d time.Duration) (float64, error) {
	e.mu.Lock() // keep Embed callers off the sessions
	defer e.mu.Unlock()
	n := e.spec.tensorLen()
	bs := e.opts.MaxBatch
	buf := make([]float32, bs*n)
	for i := 0; i < bs; i++ {
		copy(buf[i*n:], tensor)
	}
	// the workers own the sessions; stop them for the measurement and restart after
	close(e.stop)
	e.wg.Wait()
	defer func() {
		e.stop = make(chan struct{})
		for _, s := range e.sessions {
			e.wg.Add(1)
			go e.worker(s)
		}
	}()
	var count atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for _, s := range e.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := append([]float32(nil), buf...)
			out := make([]Embedding, bs)
			for time.Since(start) < d && ctx.Err() == nil {
				if err := e.run(s, b, out); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				count.Add(int64(bs))
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return float64(count.Load()) / time.Since(start).Seconds(), nil
}

// pipelineRate feeds whole passes over imgs through Embed from conc callers (one image per call,
// like independent requests) until d has passed.
func pipelineRate(ctx context.Context, e *Engine, imgs []Image, conc int, d time.Duration) (float64, int, error) {
	var done, failed atomic.Int64
	start := time.Now()
	for time.Since(start) < d {
		var next atomic.Int64
		var wg sync.WaitGroup
		var callErr error
		var once sync.Once
		for c := 0; c < conc; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= len(imgs) {
						return
					}
					r, err := e.Embed(ctx, imgs[i:i+1])
					if err != nil {
						once.Do(func() { callErr = err })
						return
					}
					if r[0].Err != nil {
						failed.Add(1)
					}
					done.Add(1)
				}
			}()
		}
		wg.Wait()
		if callErr != nil {
			return 0, 0, callErr
		}
	}
	passes := int(done.Load()) / len(imgs)
	return float64(done.Load()) / time.Since(start).Seconds(), int(failed.Load()) / max(1, passes), nil
}

// prepareStdlib is the baseline: image/jpeg (other formats through the package decoders),
// x/image/draw bilinear resize to the shorter side, centre crop, then the same normalisation.
func (e *Engine) prepareStdlib(img Image, out *Embedding) ([]float32, bool) {
	t0 := time.Now()
	var m image.Image
	var err error
	if sniff(img.Data) == "jpeg" {
		m, err = jpeg.Decode(bytes.NewReader(img.Data))
	} else {
		var r *rgbImage
		if r, err = decodeGo(sniff(img.Data), img.Data); err == nil {
			m = &image.NRGBA{Pix: rgbToRGBA(r.pix), Stride: 4 * r.w, Rect: image.Rect(0, 0, r.w, r.h)}
		}
	}
	if err != nil {
		out.Err = fmt.Errorf("%w: %v", ErrCorrupt, err)
		return nil, false
	}
	b := m.Bounds()
	out.Width, out.Height = b.Dx(), b.Dy()
	t1 := time.Now()
	out.Timings.Decode = t1.Sub(t0)
	S := e.spec.InputSize
	sc := float64(e.spec.resizeShorter()) / float64(min(b.Dx(), b.Dy()))
	rw, rh := max(S, int(math.Round(float64(b.Dx())*sc))), max(S, int(math.Round(float64(b.Dy())*sc)))
	if e.spec.Crop == "squash" {
		rw, rh = S, S
	}
	dst := image.NewRGBA(image.Rect(0, 0, rw, rh))
	xdraw.BiLinear.Scale(dst, dst.Bounds(), m, b, draw.Src, nil)
	ox, oy := (rw-S)/2, (rh-S)/2
	rgb := &rgbImage{w: S, h: S, pix: make([]byte, S*S*3)}
	for y := 0; y < S; y++ {
		for x := 0; x < S; x++ {
			p := dst.Pix[(y+oy)*dst.Stride+(x+ox)*4:]
			copy(rgb.pix[(y*S+x)*3:], p[:3])
		}
	}
	buf := e.getBuf()
	e.spec.preprocessInto(buf, decoded{img: rgb, box: [4]float64{0, 0, float64(S), float64(S)}})
	out.Timings.Preprocess = time.Since(t1)
	return buf, true
}

func rgbToRGBA(p []byte) []byte {
	out := make([]byte, len(p)/3*4)
	for i, j := 0, 0; i < len(p); i, j = i+3, j+4 {
		out[j], out[j+1], out[j+2], out[j+3] = p[i], p[i+1], p[i+2], 255
	}
	return out
}
