package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/bench"
	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/internal/ingest"
	"github.com/lookalike/lookalike/internal/locate"
)

// engineOptions turns the configuration into embed.Options. It resolves the files embed needs on
// their search paths (internal/locate: embed.model_dirs, $LOOKALIKE_MODEL_DIR, ./models,
// ../shared/models; embed.runtime_library, $ONNXRUNTIME_LIB, the setup cache): embed opens only
// the paths it is given.
func engineOptions(cfg config.Config, env *cliEnv) (embed.Options, error) {
	model, labels, err := locate.ModelFiles(cfg.Model, cfg.Embed.ModelDirs...)
	if err != nil {
		return embed.Options{}, fmt.Errorf("%w: %w", embed.ErrModel, err)
	}
	return embed.Options{
		Model:          cfg.Model,
		ModelPath:      model,
		LabelsPath:     labels,
		RuntimeLibrary: locate.RuntimeLibrary(cfg.Embed.RuntimeLibrary),
		Device:         cfg.Embed.Device,
		CUDADeviceID:   cfg.Embed.CUDADeviceID,
		Workers:        cfg.Embed.Workers,
		IntraOpThreads: cfg.Embed.IntraOpThreads,
		MaxBatch:       cfg.Embed.MaxBatch,
		MaxBatchWait:   cfg.Embed.MaxBatchWait,
		MaxPixels:      cfg.Limits.MaxPixels,
		MaxAspectRatio: cfg.Limits.MaxAspectRatio,
		Logger:         env.logger(cfg),
	}, nil
}

// dropFeatureMap turns the feature-map output off for commands that need no heatmap (faster),
// unless the configured profile pools that map (a regional profile).
func dropFeatureMap(cfg *config.Config) {
	if p, err := spec.ParseProfile(cfg.Model.Profile); err == nil && !p.Regional() {
		cfg.Model.FeatureMapTensor = ""
	}
}

func newEngine(ctx context.Context, cfg config.Config, env *cliEnv) (*embed.Engine, error) {
	o, err := engineOptions(cfg, env)
	if err == nil {
		var eng *embed.Engine
		if eng, err = embed.New(ctx, o); err == nil {
			return eng, nil
		}
	}
	return nil, fmt.Errorf("start embedding engine: %w", err)
}

type embedOutput struct {
	Path      string        `json:"path"`
	Model     string        `json:"model"`
	Dims      int           `json:"dims"`
	Width     int           `json:"width,omitempty"`
	Height    int           `json:"height,omitempty"`
	Labels    []labelOutput `json:"labels,omitempty"`
	Embedding []float32     `json:"embedding,omitempty"`
	Error     string        `json:"error,omitempty"`
}

type labelOutput struct {
	Index int     `json:"index"`
	Name  string  `json:"name"`
	Prob  float32 `json:"prob"`
}

func runEmbed(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "embed")
	asJSON := fs.Bool("json", false, "print one JSON object per image, embedding included")
	paths, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := requireArgs(paths, 1, "IMAGE..."); err != nil {
		return err
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	eng, err := newEngine(ctx, cfg, env)
	if err != nil {
		return err
	}
	defer eng.Close()
	info := eng.Info()
	imgs := make([]embed.Image, len(paths))
	readErrs := make([]error, len(paths))
	for i, p := range paths {
		imgs[i].Data, readErrs[i] = os.ReadFile(p)
	}
	embs, err := eng.Embed(ctx, imgs)
	if err != nil {
		return err
	}
	failed := 0
	enc := json.NewEncoder(env.stdout)
	for i, p := range paths {
		e := embs[i]
		if readErrs[i] != nil {
			e.Err = readErrs[i]
		}
		out := embedOutput{Path: p, Model: info.ModelID, Dims: info.Dims}
		if e.Err != nil {
			failed++
			out.Error = e.Err.Error()
		} else {
			out.Width, out.Height = e.Width, e.Height
			for _, l := range e.Labels {
				out.Labels = append(out.Labels, labelOutput{Index: l.Index, Name: l.Name, Prob: l.Prob})
			}
		}
		if *asJSON {
			if e.Err == nil {
				out.Embedding = e.Vector
			}
			if err := enc.Encode(out); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(env.stdout, "%s\n", p)
		if e.Err != nil {
			fmt.Fprintf(env.stdout, "  error: %v\n", e.Err)
			continue
		}
		mean, std, lo, hi, norm := vectorStats(e.Vector)
		fmt.Fprintf(env.stdout, "  model %s (fingerprint %s), %d dims, image %dx%d\n", info.ModelID, info.Fingerprint, info.Dims, e.Width, e.Height)
		fmt.Fprintf(env.stdout, "  vector: norm %.4f mean %.5f std %.5f min %.5f max %.5f\n", norm, mean, std, lo, hi)
		fmt.Fprintf(env.stdout, "  timings: decode %.1f ms, preprocess %.1f ms, inference %.1f ms\n",
			ms(e.Timings.Decode), ms(e.Timings.Preprocess), ms(e.Timings.Inference))
		for _, l := range e.Labels {
			fmt.Fprintf(env.stdout, "  %6.2f%%  %s\n", 100*l.Prob, l.Name)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images failed", failed, len(paths))
	}
	return nil
}

func vectorStats(v []float32) (mean, std, lo, hi, norm float64) {
	if len(v) == 0 {
		return
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	var sum, sq float64
	for _, x := range v {
		f := float64(x)
		sum += f
		sq += f * f
		lo, hi = math.Min(lo, f), math.Max(hi, f)
	}
	mean = sum / float64(len(v))
	std = math.Sqrt(math.Max(0, sq/float64(len(v))-mean*mean))
	return mean, std, lo, hi, math.Sqrt(sq)
}

func runModel(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: model inspect FILE | model export SRC DST TENSOR...", errUsage)
	}
	fs := newFlags(env, "model "+args[0])
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	switch args[0] {
	case "inspect":
		if err := requireArgs(rest, 1, "model inspect FILE"); err != nil {
			return err
		}
		cfg, err := env.loadConfig()
		if err != nil {
			return err
		}
		rep, err := embed.Inspect(rest[0], locate.RuntimeLibrary(cfg.Embed.RuntimeLibrary))
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(env.stdout, rep)
		}
		printModelReport(env, rep)
		return nil
	case "export":
		if err := requireArgs(rest, 3, "model export SRC DST TENSOR..."); err != nil {
			return err
		}
		if err := embed.ExportWithOutputs(rest[0], rest[1], rest[2:]...); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "wrote %s with outputs %v\n", rest[1], rest[2:])
		return nil
	}
	return fmt.Errorf("%w: unknown model subcommand %q", errUsage, args[0])
}

func runBench(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: bench embed DIR | bench search [flags]", errUsage)
	}
	switch args[0] {
	case "embed":
		return runBenchEmbed(ctx, env, args[1:])
	case "search":
		return runBenchSearch(ctx, env, args[1:])
	}
	return fmt.Errorf("%w: unknown bench subcommand %q", errUsage, args[0])
}

func runBenchEmbed(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "bench embed")
	asJSON := fs.Bool("json", false, "print JSON")
	concurrency := fs.Int("concurrency", 0, "concurrent requests (0 = number of CPUs)")
	limit := fs.Int("limit", 0, "use at most this many photos (0 = all)")
	dirs, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := requireArgs(dirs, 1, "DIR..."); err != nil {
		return err
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	srcs, err := ingest.Collect(dirs)
	if err != nil {
		return err
	}
	var files []string
	for _, s := range srcs {
		files = append(files, s.Path)
	}
	sort.Strings(files)
	if *limit > 0 && len(files) > *limit {
		files = files[:*limit]
	}
	if len(files) == 0 {
		return fmt.Errorf("no images under %v", dirs)
	}
	eo, err := engineOptions(cfg, env)
	if err != nil {
		return err
	}
	rep, err := bench.Embed(ctx, bench.EmbedOptions{Engine: eo, Files: files, Concurrency: *concurrency, Logger: env.logger(cfg)})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.stdout, rep)
	}
	fmt.Fprintf(env.stdout, "images                 %d\n", rep.Images)
	fmt.Fprintf(env.stdout, "model only             %.1f images/s\n", rep.ModelOnlyPerS)
	fmt.Fprintf(env.stdout, "end to end             %.1f images/s\n", rep.EndToEndPerS)
	fmt.Fprintf(env.stdout, "ratio e2e/model        %.2f\n", rep.Ratio)
	fmt.Fprintf(env.stdout, "go stdlib pipeline     %.1f images/s (ours is %.1fx faster)\n", rep.GoStdlibPerS, rep.EndToEndPerS/math.Max(rep.GoStdlibPerS, 1e-9))
	return nil
}

func runBenchSearch(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "bench search")
	asJSON := fs.Bool("json", false, "print JSON")
	o := bench.SearchOptions{}
	fs.IntVar(&o.N, "n", 100_000, "synthetic base vectors (ignored with --base)")
	fs.IntVar(&o.Queries, "queries-n", 1000, "synthetic queries (ignored with --queries)")
	fs.IntVar(&o.Dim, "dim", 1280, "synthetic dimension")
	fs.IntVar(&o.K, "k", 10, "neighbours per query")
	fs.StringVar(&o.Base, "base", "", "base vectors, TEXMEX .fvecs")
	fs.StringVar(&o.QueriesFile, "queries", "", "query vectors, TEXMEX .fvecs")
	fs.IntVar(&o.M, "M", index.DefaultM, "HNSW M")
	fs.IntVar(&o.EfConstruction, "efc", index.DefaultEfConstruction, "HNSW efConstruction")
	efs := fs.String("ef", "10,20,40,80,160", "efSearch values to sweep")
	fs.BoolVar(&o.Baseline, "baseline", true, "also run coder/hnsw v0.6.1")
	fs.StringVar(&o.Dir, "dir", "", "keep generated vectors and the ground truth here (reused by later runs)")
	indexes := fs.String("indexes", "float,sq8", "our configurations: float (float32 in memory), sq8 (compressed)")
	fs.IntVar(&o.BuildWorkers, "build-workers", 0, "goroutines building our graphs, threads building the peers' (0 = all cores)")
	fs.IntVar(&o.Repeat, "repeat", 3, "runs of each ef's queries; the fastest counts")
	fs.BoolVar(&o.SerialBuild, "serial-build", false, "also build the first of --indexes on one goroutine (the parallel speed-up)")
	fs.BoolVar(&o.FloatSameGraph, "float-same-graph", false, "with --indexes sq8: measure float32 storage on the SQ8 graph instead of building it (saves the longest build at 1M)")
	peers := fs.String("peers", "", "also run these peers on the same files: hnswlib,faiss (scripts/setup --peers)")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
	}
	if o.Efs, err = parseInts(*efs); err != nil {
		return fmt.Errorf("%w: --ef: %v", errUsage, err)
	}
	o.Indexes, o.Peers = splitComma(*indexes), splitComma(*peers)
	for _, x := range o.Indexes {
		if x != "float" && x != "sq8" {
			return fmt.Errorf("%w: --indexes: unknown configuration %q (float, sq8)", errUsage, x)
		}
	}
	for _, x := range o.Peers {
		if x != "hnswlib" && x != "faiss" {
			return fmt.Errorf("%w: --peers: unknown peer %q (hnswlib, faiss)", errUsage, x)
		}
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	o.Logger = env.logger(cfg)
	rep, err := bench.Search(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.stdout, rep)
	}
	w := env.stdout
	fmt.Fprintf(w, "n %d, dim %d, k %d, peak RSS of this process %.0f MiB\n", rep.N, rep.Dim, rep.K, rep.PeakRSSMB)
	fmt.Fprintf(w, "%-18s %7s %9s %9s %9s %9s %14s %14s\n", "build", "threads", "seconds", "cpu s", "link s", "link cpu", "index bytes", "bytes/item")
	for _, b := range rep.Builds {
		size := b.VectorBytes + b.GraphBytes
		if size == 0 {
			size = int64(b.IndexMB * (1 << 20))
		}
		fmt.Fprintf(w, "%-18s %7d %9.1f %9.1f %9.1f %9.1f %14d %14.0f\n", b.Index, b.Workers, b.Seconds, b.CPUSeconds, b.LinkSeconds, b.LinkCPUSeconds, size, b.BytesPerItem)
	}
	fmt.Fprintf(w, "%-18s %6s %9s %10s %10s\n", "index", "ef", "recall", "qps", "cpu qps")
	for _, r := range rep.Rows {
		fmt.Fprintf(w, "%-18s %6d %9.4f %10.1f %10.1f\n", r.Index, r.Ef, r.Recall, r.QPS, r.CPUQPS)
	}
	return nil
}

func writeJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, part := range splitComma(s) {
		var n int
		if _, err := fmt.Sscanf(part, "%d", &n); err != nil || n <= 0 {
			return nil, fmt.Errorf("not a positive integer: %q", part)
		}
		out = append(out, n)
	}
	return out, nil
}

func splitComma(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func printModelReport(env *cliEnv, rep embed.ModelReport) {
	w := env.stdout
	fmt.Fprintf(w, "model    %s (%d bytes, sha256 %s)\n", rep.Path, rep.Size, rep.SHA256)
	fmt.Fprintf(w, "format   IR v%d, opset %d, producer %q\n", rep.IRVersion, rep.Opset, rep.Producer)
	section := func(title string, ts []embed.TensorInfo) {
		fmt.Fprintf(w, "%s:\n", title)
		for _, t := range ts {
			fmt.Fprintf(w, "  %-24s %-8s %v\n", t.Name, t.ElemType, t.Shape)
		}
	}
	section("inputs", rep.Inputs)
	section("outputs", rep.Outputs)
	fmt.Fprintln(w, "candidate embedding layers (name a tensor as model.embedding_tensor):")
	for _, c := range rep.Candidates {
		q := ""
		if c.Quantized {
			q = " (quantized: exposed through DequantizeLinear)"
		}
		fmt.Fprintf(w, "  %-24s %-8s %v from %s%s %s\n", c.Name, c.ElemType, c.Shape, c.Producer, q, c.Note)
	}
}
