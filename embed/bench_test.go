package embed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func benchFiles(t testing.TB, dir string, n int) []string {
	t.Helper()
	var out []string
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(strings.ToLower(e.Name()), ".jpg") && (n <= 0 || len(out) < n) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// TestBench checks that Bench runs and reports sane figures. With LOOKALIKE_BENCH_DIR set it is the
// full measurement (3 s per figure) on that folder and prints the JSON report; the knobs
// LOOKALIKE_BENCH_{WORKERS,THREADS,BATCH,WAIT_US,DECODERS,CONC} override the engine defaults for tuning.
func TestBench(t *testing.T) {
	testEngine(t)
	dir := os.Getenv("LOOKALIKE_BENCH_DIR")
	o := BenchOptions{MinDuration: 200 * time.Millisecond}
	if dir == "" {
		o.Files = benchFiles(t, ukbench(t), 16)
	} else {
		o.Files = benchFiles(t, dir, 0)
		o.MinDuration = 3 * time.Second
	}
	env := func(k string) int { v, _ := strconv.Atoi(os.Getenv("LOOKALIKE_BENCH_" + k)); return v }
	o.Engine.Workers, o.Engine.IntraOpThreads, o.Engine.MaxBatch, o.Concurrency = env("WORKERS"), env("THREADS"), env("BATCH"), env("CONC")
	o.Engine.DecodeWorkers = env("DECODERS")
	if w := env("WAIT_US"); w > 0 {
		o.Engine.MaxBatchWait = time.Duration(w) * time.Microsecond
	}
	r, err := Bench(context.Background(), o)
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

func BenchmarkDecode(b *testing.B) {
	data := readPhoto(b, "ukbench00100.jpg")
	spec := DefaultModelSpec()
	b.Run("turbojpeg-scaled+tensor", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]float32, spec.tensorLen())
		for i := 0; i < b.N; i++ {
			d, err := decodeImage(data, nil, 0, spec.wantScale)
			if err != nil {
				b.Fatal(err)
			}
			spec.preprocessInto(buf, d)
		}
	})
	b.Run("turbojpeg-full", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := decodeImage(data, nil, 0, func(int, int) float64 { return 1 }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("image-jpeg", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stdlib+xdraw+tensor", func(b *testing.B) {
		e := testEngine(b)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var out Embedding
			t, ok := e.prepareStdlib(Image{Data: data}, &out)
			if !ok {
				b.Fatal(out.Err)
			}
			e.putBuf(t)
		}
	})
}

func BenchmarkEmbed(b *testing.B) {
	e := testEngine(b)
	var imgs []Image
	for i := 0; i < 8; i++ {
		imgs = append(imgs, Image{Data: readPhoto(b, fmt.Sprintf("ukbench%05d.jpg", i*4))})
	}
	b.Run("one-per-call-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := e.Embed(context.Background(), imgs[i%8:i%8+1]); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
	b.Run("batch-8", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := e.Embed(context.Background(), imgs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(8*b.N)/b.Elapsed().Seconds(), "img/s")
	})
}
