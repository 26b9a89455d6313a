package embed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"runtime"
	"testing"

	"github.com/lookalike/lookalike/embed/spec"
)

func grayPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestAspectRatioLimit: the engine refuses, from the header, images whose longer side exceeds
// Options.MaxAspectRatio (default spec.DefaultMaxAspectRatio) times the shorter, in either
// orientation, and takes the limit itself; a raised limit takes more.
func TestAspectRatioLimit(t *testing.T) {
	e := testEngine(t)
	const r = spec.DefaultMaxAspectRatio
	cases := []struct {
		w, h int
		want error
	}{
		{r * 8, 8, nil},
		{8, r * 8, nil},
		{(r + 1) * 8, 8, ErrAspectRatio},
		{8, (r + 1) * 8, ErrAspectRatio},
		{1, 100_000, ErrAspectRatio},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%dx%d", c.w, c.h), func(t *testing.T) {
			res, err := e.Embed(context.Background(), []Image{{Data: grayPNG(t, c.w, c.h)}})
			if err != nil {
				t.Fatal(err)
			}
			if got := res[0].Err; !errors.Is(got, c.want) || (c.want == nil) != (got == nil) {
				t.Fatalf("Embed error %v, want %v", got, c.want)
			}
		})
	}
	raised := limits{aspect: 2 * r}
	if err := raised.check(Config{Format: "png", Width: (r + 1) * 8, Height: 8}); err != nil {
		t.Errorf("limit %d:1 refused %d:1: %v", 2*r, r+1, err)
	}
	if err := raised.check(Config{Format: "png", Width: 8, Height: (2*r + 1) * 8}); !errors.Is(err, ErrAspectRatio) {
		t.Errorf("limit %d:1 accepted %d:1: %v", 2*r, 2*r+1, err)
	}
}

// allocated returns the bytes of Go heap fn allocates.
func allocated(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestResampleMemoryBounded: shrinking a 1×n or n×1 image (to a thumbnail, and to the model's
// input under "squash", the worst case) allocates a bounded amount whatever n. A filter table for
// such a shrink grows with n (400 MB at n = 50 000 000) and so did a two-pass resize's intermediate
// image; the streaming resample computes weights on use instead. A constant colour must stay that
// colour, which checks the computed weights.
func TestResampleMemoryBounded(t *testing.T) {
	const bound = 4 << 20
	rgb := [3]byte{200, 100, 50}
	squash := spec.DefaultModel()
	squash.Crop = "squash"
	tensor := make([]float32, squash.TensorLen())
	for _, c := range []struct {
		w, h    int
		tensor  bool // also preprocess (slow for tall images: a 224-wide row per source row)
		thumbWH [2]int
	}{
		{1, 1 << 22, false, [2]int{1, 256}},
		{1 << 22, 1, true, [2]int{256, 1}},
		{1, 1 << 18, true, [2]int{1, 256}},
	} {
		t.Run(fmt.Sprintf("%dx%d", c.w, c.h), func(t *testing.T) {
			n := c.w * c.h
			img := &rgbImage{w: c.w, h: c.h, pix: bytes.Repeat(rgb[:], n)}
			box := [4]float64{0, 0, float64(c.w), float64(c.h)}
			var out *rgbImage
			a := allocated(func() { out = resizeRGB(img, box, c.thumbWH[0], c.thumbWH[1]) })
			if a > bound {
				t.Errorf("thumbnail of %dx%d allocated %.1f MB, want < %d MB", c.w, c.h, float64(a)/(1<<20), bound>>20)
			}
			for i, v := range out.pix {
				if v != rgb[i%3] {
					t.Fatalf("thumbnail pixel byte %d = %d, want %d", i, v, rgb[i%3])
				}
			}
			t.Logf("thumbnail %dx%d -> %dx%d: %.2f MB allocated", c.w, c.h, out.w, out.h, float64(a)/(1<<20))
			if !c.tensor {
				return
			}
			a = allocated(func() { preprocessInto(squash, tensor, decoded{img: img, box: box}) })
			if a > bound {
				t.Errorf("squash tensor of %dx%d allocated %.1f MB, want < %d MB", c.w, c.h, float64(a)/(1<<20), bound>>20)
			}
			plane := squash.InputSize * squash.InputSize
			for ch := 0; ch < 3; ch++ {
				want := (float64(rgb[ch])/255 - float64(squash.Mean[ch])) / float64(squash.Std[ch])
				for _, v := range tensor[ch*plane : (ch+1)*plane] {
					if math.Abs(float64(v)-want) > 1e-3 {
						t.Fatalf("channel %d value %v, want %v", ch, v, want)
					}
				}
			}
			t.Logf("squash tensor of %dx%d: %.2f MB allocated", c.w, c.h, float64(a)/(1<<20))
		})
	}
}
