package embed

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"testing"

	"github.com/lookalike/lookalike/embed/spec"
)

func BenchmarkDecode(b *testing.B) {
	data := readPhoto(b, "ukbench00100.jpg")
	ms := spec.DefaultModel()
	b.Run("turbojpeg-scaled+tensor", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]float32, ms.TensorLen())
		for i := 0; i < b.N; i++ {
			d, err := decodeImage(data, nil, limits{}, wantScale(ms))
			if err != nil {
				b.Fatal(err)
			}
			preprocessInto(ms, buf, d)
		}
	})
	b.Run("turbojpeg-full", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := decodeImage(data, nil, limits{}, func(Config, Rect) float64 { return 1 }); err != nil {
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

// BenchmarkProfiles embeds UKBench photos one call at a time (one request in flight, as a search
// does) under each profile, on an engine with the feature map exposed: the latency ratio of the
// regional profiles to fast.
func BenchmarkProfiles(b *testing.B) {
	e := regionalEngine(b)
	var imgs []Image
	for i := 0; i < 8; i++ {
		imgs = append(imgs, Image{Data: readPhoto(b, fmt.Sprintf("ukbench%05d.jpg", i*4))})
	}
	for _, p := range append(spec.ProfileNames(), "rmac:448", "rmac:317", "rmac:224") {
		b.Run(p, func(b *testing.B) {
			i := 0
			for b.Loop() {
				img := imgs[i%len(imgs)]
				img.Profile = p
				if _, err := e.Embed(context.Background(), []Image{img}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
