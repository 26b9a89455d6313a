package intel

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/image/draw"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/internal/locate"
)

var ctx = context.Background()

func photo(t testing.TB, i int) []byte {
	t.Helper()
	dir, err := locate.Dir("ukbench", locate.DatasetDirs())
	if err != nil {
		t.Skipf("UKBench photos not found: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("ukbench%05d.jpg", i)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit decodes a photo, applies f to every pixel (nil: none), scales it and re-encodes it.
func edit(t testing.TB, data []byte, scale float64, q int, f func(r, g, b uint8) color.RGBA) []byte {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	src := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Copy(src, image.Point{}, img, b, draw.Src, nil)
	if f != nil {
		for i := 0; i < len(src.Pix); i += 4 {
			c := f(src.Pix[i], src.Pix[i+1], src.Pix[i+2])
			src.Pix[i], src.Pix[i+1], src.Pix[i+2] = c.R, c.G, c.B
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, int(float64(b.Dx())*scale), int(float64(b.Dy())*scale)))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func signature(t testing.TB, img []byte) *PixelSignature {
	t.Helper()
	th, err := embed.Thumbnail(img, 256, 82, 0)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewPixelSignature(th)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPairTier(t *testing.T) {
	tiers := Tiers{Near: 0.85, Pixel: 0.94, Chroma: 0.86, Similar: 0.8}
	for _, tc := range []struct {
		name  string
		score float32
		same  bool
		px    PixelScore
		want  string
	}{
		{"same thumbnail", 1, true, PixelScore{1, 1}, TierExact},
		{"re-encoded", 0.9999, false, PixelScore{0.99, 0.98}, TierNear},
		{"another photo", 0.97, false, PixelScore{0.5, 0.9}, TierSimilar}, // close embedding, other pixels
		{"cropped", 0.9, false, PixelScore{0.96, 0.95}, TierNear},
		{"another colour", 0.95, false, PixelScore{0.99, 0.6}, TierSimilar}, // same luminance, other hue
		{"below the near gate", 0.82, false, PixelScore{0.99, 1}, TierSimilar},
		{"unrelated", 0.5, false, PixelScore{}, TierNone},
	} {
		if got := tiers.PairTier(tc.score, tc.same, tc.px); got != tc.want {
			t.Errorf("%s: PairTier(%v, %v, %+v) = %s, want %s", tc.name, tc.score, tc.same, tc.px, got, tc.want)
		}
	}
	if _, err := tiers.Threshold("fuzzy"); err == nil {
		t.Error("unknown tier accepted")
	}
}

// TestCompareSeparatesCopiesFromColourVariants: copies match in luminance and colour; another
// photo of the object does not match in luminance; the same photo with its hue turned by 120°
// (every pixel's channels rotated) matches in luminance but not in colour.
func TestCompareSeparatesCopiesFromColourVariants(t *testing.T) {
	chroma := config.Default().Intel.ChromaMatch
	rotate := func(r, g, b uint8) color.RGBA { return color.RGBA{b, r, g, 255} }
	brighter := func(r, g, b uint8) color.RGBA {
		f := func(v uint8) uint8 { return uint8(min(255, int(v)*5/4)) }
		return color.RGBA{f(r), f(g), f(b), 255}
	}
	for _, i := range []int{8, 40, 60, 100} {
		orig := photo(t, i)
		a := signature(t, orig)
		for _, tc := range []struct {
			name   string
			img    []byte
			copyOf bool // a near-duplicate
		}{
			{"half-size q50", edit(t, orig, 0.5, 50, nil), true},
			{"brightness+25%", edit(t, orig, 1, 85, brighter), true},
			{"hue+120", edit(t, orig, 1, 85, rotate), false},
		} {
			s := Compare(a, signature(t, tc.img))
			if s.Luma < 0.95 {
				t.Errorf("ukbench%05d %s: luma %.3f, the shapes are the same", i, tc.name, s.Luma)
			}
			if (s.Chroma >= chroma) != tc.copyOf {
				t.Errorf("ukbench%05d %s: chroma %.3f against the threshold %.2f", i, tc.name, s.Chroma, chroma)
			}
		}
		if s := Compare(a, signature(t, photo(t, i^1))); s.Luma > 0.9 {
			t.Errorf("ukbench%05d: luma %.3f with another photo of the object", i, s.Luma)
		}
	}
}

func TestHeatmapAndCropBox(t *testing.T) {
	// Two cells: one aligned with q, one orthogonal.
	fm := []float32{1, 0, 0, 1} // C=2, H=1, W=2: channel-major
	heat, err := Heatmap(fm, [3]int{2, 1, 2}, []float32{1, 0})
	if err != nil || heat[0] != 1 || heat[1] != 0 {
		t.Fatalf("heat %v, %v", heat, err)
	}
	if _, err := Heatmap(fm, [3]int{3, 1, 2}, []float32{1, 0}); err == nil {
		t.Error("shape mismatch accepted")
	}
	box := CropBox(256, 192, spec.DefaultModel())
	if box.Dy() != 168 || box.Dx() != 168 || box.Min.X != 44 {
		t.Errorf("crop box %v", box)
	}
}

// TestContrast: a cell every match shares with the query and a cell only this match shares with
// it score the same cosine with the query (a uniform glow); against the average match, the second
// stands out.
func TestContrast(t *testing.T) {
	// C=3, H=1, W=2, channel-major: cell 0 is (1,0,0), cell 1 is (0,1,0).
	fm := embed.Embedding{FeatureMap: []float32{1, 0, 0, 1, 0, 0}, FeatureMapShape: [3]int{3, 1, 2}}
	q := []float32{0.7071, 0.7071, 0}
	e := &Explanation{}
	var err error
	if e.Heat, err = Heatmap(fm.FeatureMap, fm.FeatureMapShape, q); err != nil {
		t.Fatal(err)
	}
	if d := e.Heat[0] - e.Heat[1]; d > 1e-3 || d < -1e-3 {
		t.Fatalf("plain heat %v: want both cells alike", e.Heat)
	}
	base := MeanVector([][]float32{{1, 0, 0}, {1, 0.1, 0}})
	if err := e.Contrast(fm, base); err != nil {
		t.Fatal(err)
	}
	if e.Heat[1] <= e.Heat[0]+0.5 || e.Max != e.Heat[1] || e.Min != e.Heat[0] {
		t.Errorf("contrasted heat %v (min %v, max %v): want the distinctive cell far hotter", e.Heat, e.Min, e.Max)
	}
	if err := e.Contrast(fm, []float32{1, 0}); err == nil {
		t.Error("a baseline of the wrong size was accepted")
	}
	if MeanVector([][]float32{{1}, {1, 2}}) != nil || MeanVector(nil) != nil {
		t.Error("MeanVector of mismatched or no vectors")
	}
}

// TestLetterbox: the padded photo is square, and the model's centre crop of it covers the whole
// photo (the heatmap then spans all of it), for landscape, portrait and square photos.
func TestLetterbox(t *testing.T) {
	ms := spec.DefaultModel()
	for _, size := range []image.Point{{256, 192}, {192, 256}, {256, 256}} {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, image.NewRGBA(image.Rectangle{Max: size}), nil); err != nil {
			t.Fatal(err)
		}
		padded, box, err := Letterbox(buf.Bytes(), ms)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(padded))
		if err != nil || cfg.Width != cfg.Height {
			t.Fatalf("%v: padded %dx%d (%v), want a square", size, cfg.Width, cfg.Height, err)
		}
		photo := image.Rectangle{Max: size}
		if !photo.In(box) || box.Dx() > size.X+4 && box.Dy() > size.Y+4 {
			t.Errorf("%v: crop covers %v of the photo %v: want all of it, and tight on its long side", size, box, photo)
		}
	}
	if _, _, err := Letterbox([]byte("not a jpeg"), ms); err == nil {
		t.Error("a non-JPEG was padded")
	}
}

// newCollection opens a real bbolt collection in a temporary directory.
func newCollection(t testing.TB, dims int) *index.Collection {
	t.Helper()
	db, err := index.Open(t.TempDir(), &index.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	col, err := db.CreateCollection("c", index.CollectionConfig{Fingerprint: "test", Dims: dims})
	if err != nil {
		t.Fatal(err)
	}
	return col
}
