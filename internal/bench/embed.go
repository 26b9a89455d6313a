package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lookalike/lookalike/embed"
)

// EmbedOptions configure Embed.
type EmbedOptions struct {
	Engine embed.Options
	// Files are the images (read into memory before timing).
	Files []string
	// Concurrency is the number of concurrent single-image callers; 0 = 3*GOMAXPROCS.
	Concurrency int
	// MinDuration is how long each measurement runs at least (whole passes over Files); 0 = 3s.
	MinDuration time.Duration
	Logger      *slog.Logger
}

// EmbedReport holds throughputs measured in one run on the same machine.
type EmbedReport struct {
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

// Embed measures, in one run: model-only images/s (inference alone on a prepared tensor, every
// session busy: the cores the pipeline uses), end-to-end images/s (bytes in memory to embedding)
// and the same pipeline with Go's decoders and x/image/draw (StdlibTensor) in place of TurboJPEG
// and the engine's resampler.
func Embed(ctx context.Context, o EmbedOptions) (EmbedReport, error) {
	if len(o.Files) == 0 {
		return EmbedReport{}, fmt.Errorf("bench: embed: no files")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.MinDuration <= 0 {
		o.MinDuration = 3 * time.Second
	}
	imgs := make([][]byte, len(o.Files))
	for i, f := range o.Files {
		b, err := os.ReadFile(f)
		if err != nil {
			return EmbedReport{}, fmt.Errorf("bench: embed: %w", err)
		}
		imgs[i] = b
	}
	e, err := embed.New(ctx, o.Engine)
	if err != nil {
		return EmbedReport{}, err
	}
	defer e.Close()
	info := e.Info()
	conc := o.Concurrency
	if conc <= 0 {
		conc = 3 * runtime.GOMAXPROCS(0)
	}
	rep := EmbedReport{Images: len(imgs), Device: info.Device, Workers: info.Workers,
		IntraOpThreads: info.IntraOp, MaxBatch: info.MaxBatch, Concurrency: conc}

	// The stdlib pipeline's tensors: the first that decodes also feeds the model-only run.
	n := info.Spec.TensorLen()
	tensor := make([]float32, n)
	var firstErr error
	for _, b := range imgs {
		if firstErr = StdlibTensor(tensor, b, info.Spec); firstErr == nil {
			break
		}
	}
	if firstErr != nil {
		return rep, fmt.Errorf("bench: embed: no file decodes: %w", firstErr)
	}
	// Enough callers to keep every session's batch full.
	modelConc := max(conc, 2*info.Workers*info.MaxBatch)
	rate, _, err := passes(ctx, 4*modelConc, modelConc, o.MinDuration, func(int) (bool, error) {
		r, err := e.EmbedTensors(ctx, [][]float32{tensor})
		return err == nil && r[0].Err == nil, err
	})
	if err != nil {
		return rep, err
	}
	rep.ModelOnlyPerS = rate
	log.Info("bench: model only", "img_per_s", rate)

	if rep.EndToEndPerS, rep.Failed, err = passes(ctx, len(imgs), conc, o.MinDuration, func(i int) (bool, error) {
		r, err := e.Embed(ctx, []embed.Image{{Data: imgs[i]}})
		return err == nil && r[0].Err == nil, err
	}); err != nil {
		return rep, err
	}
	log.Info("bench: end to end", "img_per_s", rep.EndToEndPerS, "failed", rep.Failed)

	var bufs sync.Pool // the engine pools its tensors too
	bufs.New = func() any { b := make([]float32, n); return &b }
	if rep.GoStdlibPerS, _, err = passes(ctx, len(imgs), conc, o.MinDuration, func(i int) (bool, error) {
		t := bufs.Get().(*[]float32)
		defer bufs.Put(t)
		if err := StdlibTensor(*t, imgs[i], info.Spec); err != nil {
			return false, nil
		}
		r, err := e.EmbedTensors(ctx, [][]float32{*t})
		return err == nil && r[0].Err == nil, err
	}); err != nil {
		return rep, err
	}
	log.Info("bench: go stdlib pipeline", "img_per_s", rep.GoStdlibPerS)
	rep.Ratio = round3(rep.EndToEndPerS / rep.ModelOnlyPerS)
	rep.SpeedupVsStdlib = round3(rep.EndToEndPerS / rep.GoStdlibPerS)
	rep.ModelOnlyPerS, rep.EndToEndPerS, rep.GoStdlibPerS = round3(rep.ModelOnlyPerS), round3(rep.EndToEndPerS), round3(rep.GoStdlibPerS)
	return rep, nil
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// passes runs one(i) for i in 0..n-1 from conc callers (like independent requests), in whole
// passes, until d has passed. It returns items per second and the failures of one pass; an error
// from one stops it.
func passes(ctx context.Context, n, conc int, d time.Duration, one func(i int) (bool, error)) (float64, int, error) {
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
					if i >= n {
						return
					}
					ok, err := one(i)
					if err != nil {
						once.Do(func() { callErr = err })
						return
					}
					if !ok {
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
	nPasses := int(done.Load()) / n
	return float64(done.Load()) / time.Since(start).Seconds(), int(failed.Load()) / max(1, nPasses), nil
}
