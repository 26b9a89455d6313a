package embed

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/internal/locate"
)

func modelPath(t testing.TB) string {
	t.Helper()
	testEngine(t) // skips when absent
	return testEngine(t).Info().ModelPath
}

// TestEngineFingerprint: the engine names its vectors with the spec's fingerprint of the bytes it loaded.
func TestEngineFingerprint(t *testing.T) {
	info := testEngine(t).Info()
	if want := spec.DefaultModel().Fingerprint(info.ModelSHA256); info.Fingerprint != want {
		t.Errorf("engine fingerprint %s, want %s", info.Fingerprint, want)
	}
}

func TestInspect(t *testing.T) {
	r, err := Inspect(modelPath(t), locate.RuntimeLibrary(""))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Inputs) != 1 || r.Inputs[0].Name != "input" || r.Inputs[0].ElemType != "float" || len(r.Inputs[0].Shape) != 4 {
		t.Errorf("inputs %+v", r.Inputs)
	}
	if len(r.Outputs) != 1 || r.Outputs[0].Name != "output" {
		t.Errorf("outputs %+v", r.Outputs)
	}
	if r.Opset != 12 {
		t.Errorf("opset %d, want 12", r.Opset)
	}
	var found *Candidate
	for i, c := range r.Candidates {
		if c.Name == "464_quantized" {
			found = &r.Candidates[i]
		}
	}
	if found == nil || !found.Quantized || found.Producer != "QLinearGlobalAveragePool" {
		t.Fatalf("464_quantized missing or wrong among candidates %+v", r.Candidates)
	}
	if len(found.Shape) != 4 || found.Shape[1] != 1280 {
		t.Errorf("464_quantized shape %v, want [N,1280,1,1] (probe error: %q)", found.Shape, r.ProbeError)
	}
	if _, err := Inspect(filepath.Join(t.TempDir(), "none.onnx"), ""); !errors.Is(err, ErrModel) {
		t.Errorf("missing file: %v", err)
	}
}

func TestExportWithOutputs(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "with-embedding.onnx")
	if err := ExportWithOutputs(modelPath(t), dst, "464_quantized", spec.DefaultFeatureMapTensor); err != nil {
		t.Fatal(err)
	}
	r, err := Inspect(dst, locate.RuntimeLibrary(""))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range r.Outputs {
		names = append(names, o.Name)
	}
	if strings.Join(names, ",") != "output,464_quantized_dequantized,627_quantized_dequantized" {
		t.Errorf("outputs %v", names)
	}
	if err := ExportWithOutputs(modelPath(t), dst, "no_such_tensor"); !errors.Is(err, ErrModel) {
		t.Errorf("unknown tensor: %v, want ErrModel", err)
	}
	// The exported copy loads as a model of its own (no checksum) and embeds alike.
	ms := spec.DefaultModel()
	ms.File, ms.SHA256 = dst, ""
	e2, err := New(context.Background(), testOptions(Options{Model: ms, Workers: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	photo := Image{Data: readPhoto(t, "ukbench00088.jpg")}
	a, b := embedOne(t, testEngine(t), photo), embedOne(t, e2, photo)
	if cos := cosine(a.Vector, b.Vector); cos < 0.9999 {
		t.Errorf("exported model: cosine %.6f to the original", cos)
	}
}

func TestFeatureMap(t *testing.T) {
	ms := spec.DefaultModel()
	ms.FeatureMapTensor = spec.DefaultFeatureMapTensor
	e, err := New(context.Background(), testOptions(Options{Model: ms, Workers: 1}))
	if err != nil {
		skipIfAbsent(t, err)
		t.Fatal(err)
	}
	defer e.Close()
	r := embedOne(t, e, Image{Data: readPhoto(t, "ukbench00100.jpg")})
	if r.FeatureMapShape != [3]int{1280, 7, 7} || len(r.FeatureMap) != 1280*49 {
		t.Fatalf("feature map shape %v len %d, want [1280 7 7]", r.FeatureMapShape, len(r.FeatureMap))
	}
	// Average-pooling the map must give (up to int8 rounding) the embedding's direction.
	pooled := make([]float32, 1280)
	for c := range pooled {
		for k := 0; k < 49; k++ {
			pooled[c] += r.FeatureMap[c*49+k] / 49
		}
	}
	if cos := cosine(pooled, r.Vector); cos < 0.99 {
		t.Errorf("pooled feature map vs embedding: cosine %.4f, want >= 0.99", cos)
	}
	if e.Info().Fingerprint != testEngine(t).Info().Fingerprint {
		t.Errorf("feature map changed the fingerprint")
	}
}

// TestFloatEmbeddingTensor: a float tensor (here the logits) is exposed without dequantizing.
func TestFloatEmbeddingTensor(t *testing.T) {
	ms := spec.DefaultModel()
	ms.EmbeddingTensor, ms.EmbeddingDim = "output", 1000
	e, err := New(context.Background(), testOptions(Options{Model: ms, Workers: 1}))
	if err != nil {
		skipIfAbsent(t, err)
		t.Fatal(err)
	}
	defer e.Close()
	r := embedOne(t, e, Image{Data: readPhoto(t, "ukbench00088.jpg")})
	if len(r.Vector) != 1000 {
		t.Fatalf("vector length %d, want 1000", len(r.Vector))
	}
	best := 0
	for i, v := range r.Vector {
		if v > r.Vector[best] {
			best = i
		}
	}
	if best != r.Labels[0].Index {
		t.Errorf("argmax of the exposed logits %d differs from top-1 label %v", best, r.Labels[0])
	}
}

// TestModelErrors: startup refuses a bad model with ErrModel and one clear line.
func TestModelErrors(t *testing.T) {
	good := modelPath(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.onnx")
	os.WriteFile(garbage, []byte("this is not protobuf at all \x00\xff\x12"), 0o644)
	b, _ := os.ReadFile(good)
	truncated := filepath.Join(dir, "truncated.onnx")
	os.WriteFile(truncated, b[:len(b)/3], 0o644)
	cases := []struct {
		name string
		edit func(*spec.Model)
		want string
	}{
		{"missing file", func(s *spec.Model) { s.File = filepath.Join(dir, "absent.onnx") }, "absent.onnx"},
		{"missing labels", func(s *spec.Model) { s.LabelsFile = filepath.Join(dir, "absent.txt") }, "absent.txt"},
		{"wrong checksum", func(s *spec.Model) { s.SHA256 = strings.Repeat("ab", 32) }, "sha256"},
		{"garbage file", func(s *spec.Model) { s.File, s.SHA256 = garbage, "" }, "garbage.onnx"},
		{"truncated file", func(s *spec.Model) { s.File, s.SHA256 = truncated, "" }, "truncated.onnx"},
		{"wrong input size", func(s *spec.Model) { s.InputSize, s.ResizeShorter = 192, 0 }, "input_size 192"},
		{"wrong layout", func(s *spec.Model) { s.Layout = "NHWC" }, "NHWC"},
		{"wrong input name", func(s *spec.Model) { s.Input = "images" }, `"images"`},
		{"unknown embedding tensor", func(s *spec.Model) { s.EmbeddingTensor = "nope" }, `"nope"`},
		{"wrong embedding dim", func(s *spec.Model) { s.EmbeddingDim = 1000 }, "embedding_dim 1000"},
		{"unknown logits", func(s *spec.Model) { s.LogitsOutput = "probs" }, `"probs"`},
		{"invalid spec", func(s *spec.Model) { s.Crop = "zoom" }, "crop"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ms := spec.DefaultModel()
			ms.File = good
			c.edit(&ms)
			e, err := New(context.Background(), testOptions(Options{Model: ms, Workers: 1}))
			if err == nil {
				e.Close()
				t.Fatal("New accepted a bad model")
			}
			if !errors.Is(err, ErrModel) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("New error %q: want ErrModel on one line mentioning %s", err, c.want)
			}
		})
	}
}

// TestDevice: no GPU here, so "cuda" must fail with ErrNoGPU and "auto" must fall back to the CPU
// with one short INFO line (a CPU-only machine is normal, not worth a warning).
func TestDevice(t *testing.T) {
	testEngine(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if e, err := New(context.Background(), testOptions(Options{Device: "cuda", Workers: 1})); err == nil {
		if e.Info().Device == "cuda" {
			e.Close()
			t.Skip("a usable GPU is present; the no-GPU paths cannot be tested here")
		}
		t.Fatal("cuda without GPU succeeded")
	} else if !errors.Is(err, ErrNoGPU) || strings.Contains(err.Error(), "\n") {
		t.Errorf("Device cuda: %q, want ErrNoGPU on one line", err)
	}
	e, err := New(context.Background(), testOptions(Options{Device: "auto", Workers: 1, Logger: log}))
	if err != nil {
		t.Fatalf("Device auto: %v", err)
	}
	defer e.Close()
	if e.Info().Device != "cpu" {
		t.Errorf("auto fell back to %q", e.Info().Device)
	}
	var fallback []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "no GPU: using CPU") {
			fallback = append(fallback, l)
		}
	}
	if len(fallback) != 1 || !strings.Contains(fallback[0], "level=INFO") || len(fallback[0]) > 250 {
		t.Errorf("want one short INFO fallback line, got %q in:\n%s", fallback, logs.String())
	}
	t.Logf("fallback line: %s", fallback)
	embedOne(t, e, Image{Data: readPhoto(t, "ukbench00000.jpg")})
	if _, err := New(context.Background(), testOptions(Options{Device: "tpu"})); err == nil || !strings.Contains(err.Error(), "tpu") {
		t.Errorf("unknown device: %v", err)
	}
}

// TestRuntimeMissing runs in a child process: the ONNX Runtime environment is process-wide, and
// this process has already loaded the real library.
func TestRuntimeMissing(t *testing.T) {
	if os.Getenv("LOOKALIKE_CHILD_RUNTIME") == "1" {
		_, err := New(context.Background(), testOptions(Options{RuntimeLibrary: "/nonexistent/libonnxruntime.so.1"}))
		if !errors.Is(err, ErrRuntime) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("missing runtime: %q, want ErrRuntime on one line", err)
		}
		return
	}
	modelPath(t)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestRuntimeMissing$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LOOKALIKE_CHILD_RUNTIME=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("child: %v\n%s", err, out)
	}
}

// TestDynamicBatching: concurrent single-image callers share inference runs when MaxBatch > 1.
func TestDynamicBatching(t *testing.T) {
	testEngine(t)
	e, err := New(context.Background(), testOptions(Options{Workers: 1, MaxBatch: 8, MaxBatchWait: 200 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	photo := readPhoto(t, "ukbench00000.jpg")
	var wg sync.WaitGroup
	batches := make([]int, 8)
	for i := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.Embed(context.Background(), []Image{{Data: photo}})
			if err == nil && r[0].Err == nil {
				batches[i] = r[0].Batch
			}
		}()
	}
	wg.Wait()
	maxB := 0
	for _, b := range batches {
		if b == 0 {
			t.Fatalf("a caller failed: batches %v", batches)
		}
		maxB = max(maxB, b)
	}
	if maxB < 2 {
		t.Errorf("8 concurrent callers never shared a run (batch sizes %v)", batches)
	}
}

func TestClose(t *testing.T) {
	testEngine(t)
	e, err := New(context.Background(), testOptions(Options{Workers: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Embed(context.Background(), []Image{{Data: readPhoto(t, "ukbench00000.jpg")}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Embed after Close: %v, want ErrClosed", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The shared engine still works: the runtime is reference-counted.
	embedOne(t, testEngine(t), Image{Data: readPhoto(t, "ukbench00000.jpg")})
}

// TestPoolShare: engines sharing the session pool (PoolShare) each take their share of the default
// sessions, at least one, and their default threads stay within the cores all together.
func TestPoolShare(t *testing.T) {
	testEngine(t)
	cores := runtime.GOMAXPROCS(0)
	for _, share := range []int{1, 2, cores + 1} {
		e, err := New(context.Background(), testOptions(Options{Device: "cpu", PoolShare: share}))
		if err != nil {
			t.Fatal(err)
		}
		in := e.Info()
		e.Close()
		if want := max(1, cores/share); in.Workers != want {
			t.Errorf("PoolShare %d on %d cores: %d sessions, want %d", share, cores, in.Workers, want)
		}
		if total := in.Workers * in.IntraOp * share; total > max(cores, share) {
			t.Errorf("PoolShare %d: %d sessions x %d threads x %d engines exceed the %d cores", share, in.Workers, in.IntraOp, share, cores)
		}
	}
}
