package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/internal/locate"
)

// engineOptions resolves the default model and the runtime library as cmd/lookalike does, or skips
// when they are not installed (outside CI).
func engineOptions(t testing.TB) embed.Options {
	t.Helper()
	model, labels, err := locate.ModelFiles(spec.DefaultModel())
	if err != nil {
		if errors.Is(err, locate.ErrNotFound) && os.Getenv("CI") == "" {
			t.Skipf("model not installed (run scripts/setup): %v", err)
		}
		t.Fatal(err)
	}
	return embed.Options{ModelPath: model, LabelsPath: labels, RuntimeLibrary: locate.RuntimeLibrary("")}
}

// photos lists up to n JPEGs of dir (all with n <= 0), or of the UKBench subset when dir is "".
func photos(t testing.TB, dir string, n int) []string {
	t.Helper()
	if dir == "" {
		d, err := locate.Dir("ukbench", locate.DatasetDirs())
		if err != nil {
			t.Skipf("UKBench photos not installed: %v", err)
		}
		dir = d
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(strings.ToLower(e.Name()), ".jpg") && (n <= 0 || len(out) < n) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// TestEmbed checks that Embed runs and reports sane figures. With LOOKALIKE_BENCH_DIR set it is the
// full measurement (3 s per figure) on that folder and prints the JSON report; the knobs
// LOOKALIKE_BENCH_{WORKERS,THREADS,BATCH,WAIT_US,DECODERS,CONC} override the engine defaults for tuning.
func TestEmbed(t *testing.T) {
	o := EmbedOptions{Engine: engineOptions(t), MinDuration: 200 * time.Millisecond}
	dir := os.Getenv("LOOKALIKE_BENCH_DIR")
	o.Files = photos(t, dir, 16)
	if dir != "" {
		o.Files = photos(t, dir, 0)
		o.MinDuration = 3 * time.Second
	}
	env := func(k string) int { v, _ := strconv.Atoi(os.Getenv("LOOKALIKE_BENCH_" + k)); return v }
	o.Engine.Workers, o.Engine.IntraOpThreads, o.Engine.MaxBatch, o.Concurrency = env("WORKERS"), env("THREADS"), env("BATCH"), env("CONC")
	o.Engine.DecodeWorkers = env("DECODERS")
	if w := env("WAIT_US"); w > 0 {
		o.Engine.MaxBatchWait = time.Duration(w) * time.Microsecond
	}
	r, err := Embed(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	t.Logf("%s", b)
	if dir != "" {
		fmt.Println(string(b))
	}
	if r.Images != len(o.Files) || r.Failed != 0 || r.ModelOnlyPerS <= 0 || r.EndToEndPerS <= 0 || r.GoStdlibPerS <= 0 {
		t.Errorf("implausible report %s", b)
	}
}

// TestStdlibTensor: the baseline's tensor of a photo is close to the engine's own (same geometry
// and normalisation, another decoder and resampler), so the baseline does comparable work.
func TestStdlibTensor(t *testing.T) {
	files := photos(t, "", 1)
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	m := spec.DefaultModel()
	got := make([]float32, m.TensorLen())
	if err := StdlibTensor(got, data, m); err != nil {
		t.Fatal(err)
	}
	e, err := embed.New(ctx, engineOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	viaTensor, err := e.EmbedTensors(ctx, [][]float32{got})
	if err != nil || viaTensor[0].Err != nil {
		t.Fatalf("EmbedTensors: %v %v", err, viaTensor[0].Err)
	}
	viaBytes, err := e.Embed(ctx, []embed.Image{{Data: data}})
	if err != nil || viaBytes[0].Err != nil {
		t.Fatalf("Embed: %v %v", err, viaBytes[0].Err)
	}
	var cos float64
	for i, v := range viaTensor[0].Vector {
		cos += float64(v) * float64(viaBytes[0].Vector[i])
	}
	if cos < 0.9 {
		t.Errorf("stdlib pipeline vs engine: cosine %.3f, want >= 0.9 (same photo)", cos)
	}
	if err := StdlibTensor(got, []byte("not an image"), m); err == nil {
		t.Error("StdlibTensor accepted garbage")
	}
	if r, err := e.EmbedTensors(ctx, [][]float32{got[:10]}); err != nil || r[0].Err == nil {
		t.Errorf("EmbedTensors accepted a short tensor: %v", err)
	}
}

// BenchmarkStdlibTensor is the baseline's per-photo cost (image/jpeg + x/image/draw + tensor), to
// set beside embed's BenchmarkDecode.
func BenchmarkStdlibTensor(b *testing.B) {
	data, err := os.ReadFile(photos(b, "", 1)[0])
	if err != nil {
		b.Fatal(err)
	}
	m := spec.DefaultModel()
	dst := make([]float32, m.TensorLen())
	b.ReportAllocs()
	for b.Loop() {
		if err := StdlibTensor(dst, data, m); err != nil {
			b.Fatal(err)
		}
	}
}
