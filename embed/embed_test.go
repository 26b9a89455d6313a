package embed

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"sync"
	"testing"

	"golang.org/x/image/bmp"
	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/tiff"
)

func cosine(a, b []float32) float64 {
	var d, na, nb float64
	for i := range a {
		d += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return d / math.Sqrt(na*nb)
}

func embedOne(t testing.TB, e *Engine, img Image) Embedding {
	t.Helper()
	r, err := e.Embed(context.Background(), []Image{img})
	if err != nil {
		t.Fatalf("Embed: %v", err)
	}
	if r[0].Err != nil {
		t.Fatalf("Embed: image error: %v", r[0].Err)
	}
	return r[0]
}

func stdDecode(t testing.TB, b []byte) image.Image {
	t.Helper()
	m, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func encJPEG(t testing.TB, m image.Image, q int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encPNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func scaled(m image.Image, w, h int) *image.RGBA {
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	xdraw.CatmullRom.Scale(dst, dst.Bounds(), m, m.Bounds(), xdraw.Src, nil)
	return dst
}

func subImage(m image.Image, r image.Rectangle) image.Image {
	dst := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	xdraw.Copy(dst, image.Point{}, m, r, xdraw.Src, nil)
	return dst
}

// TestDeterministic: the same photo embeds to the same vector across runs, batch sizes, batch
// positions, concurrent callers and an engine that batches.
func TestDeterministic(t *testing.T) {
	e := testEngine(t)
	ref := embedOne(t, e, Image{Data: readPhoto(t, "ukbench00088.jpg")})
	var batch []Image
	for i := 80; i < 88; i++ {
		batch = append(batch, Image{Data: readPhoto(t, fmt.Sprintf("ukbench%05d.jpg", i+1))})
	}
	batch[5] = Image{Data: readPhoto(t, "ukbench00088.jpg")}

	batching, err := New(context.Background(), testOptions(Options{Workers: 1, MaxBatch: 8, MaxBatchWait: 0}))
	if err != nil {
		t.Fatal(err)
	}
	defer batching.Close()

	cases := []struct {
		name string
		e    *Engine
		imgs []Image
		idx  int
	}{
		{"again", e, []Image{{Data: readPhoto(t, "ukbench00088.jpg")}}, 0},
		{"in batch of 8", e, batch, 5},
		{"engine MaxBatch=8", batching, batch, 5},
		{"engine MaxBatch=8 alone", batching, batch[5:6], 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := c.e.Embed(context.Background(), c.imgs)
			if err != nil || r[c.idx].Err != nil {
				t.Fatal(err, r[c.idx].Err)
			}
			if cos := cosine(ref.Vector, r[c.idx].Vector); cos < 0.9999 {
				t.Errorf("cosine to first run = %.6f, want >= 0.9999", cos)
			}
		})
	}
	t.Run("concurrent callers", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan string, 16)
		for g := 0; g < 6; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := e.Embed(context.Background(), batch)
				if err != nil || r[5].Err != nil {
					errs <- fmt.Sprint(err, r[5].Err)
					return
				}
				if cos := cosine(ref.Vector, r[5].Vector); cos < 0.9999 {
					errs <- fmt.Sprintf("cosine %.6f", cos)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for s := range errs {
			t.Error(s)
		}
	})
	var n float64
	for _, x := range ref.Vector {
		n += float64(x) * float64(x)
	}
	if math.Abs(n-1) > 1e-4 || len(ref.Vector) != e.Info().Dims {
		t.Errorf("vector: len %d, squared norm %.6f; want %d, 1", len(ref.Vector), n, e.Info().Dims)
	}
}

// TestNearDuplicates: resized, re-encoded and slightly cropped copies stay close; other objects
// are clearly further.
func TestNearDuplicates(t *testing.T) {
	e := testEngine(t)
	for _, name := range []string{"ukbench00088.jpg", "ukbench00100.jpg", "ukbench00132.jpg"} {
		t.Run(name, func(t *testing.T) {
			orig := readPhoto(t, name)
			m := stdDecode(t, orig)
			b := m.Bounds()
			ref := embedOne(t, e, Image{Data: orig}).Vector
			variants := []struct {
				name string
				img  Image
			}{
				{"resized 320x240", Image{Data: encJPEG(t, scaled(m, 320, 240), 90)}},
				{"resized 1280x960", Image{Data: encJPEG(t, scaled(m, 1280, 960), 90)}},
				{"jpeg q60", Image{Data: encJPEG(t, m, 60)}},
				{"png", Image{Data: encPNG(t, m)}},
				{"cropped 5% each side", Image{Data: encJPEG(t, subImage(m, image.Rect(32, 24, b.Dx()-32, b.Dy()-24)), 90)}},
				{"Crop rect 90%", Image{Data: orig, Crop: &Rect{X: 40, Y: 20, W: 576, H: 432}}},
			}
			minClose := 1.0
			for _, v := range variants {
				r := embedOne(t, e, v.img)
				cos := cosine(ref, r.Vector)
				minClose = math.Min(minClose, cos)
				if cos < 0.85 {
					t.Errorf("%s: cosine %.4f to the original, want >= 0.85", v.name, cos)
				}
				t.Logf("%s: cosine %.4f", v.name, cos)
			}
			maxOther := -1.0
			for _, other := range []string{"ukbench00000.jpg", "ukbench00020.jpg", "ukbench00060.jpg", "ukbench00120.jpg"} {
				cos := cosine(ref, embedOne(t, e, Image{Data: readPhoto(t, other)}).Vector)
				maxOther = math.Max(maxOther, cos)
			}
			t.Logf("closest variant %.4f, most similar other object %.4f", minClose, maxOther)
			if maxOther > minClose-0.1 {
				t.Errorf("other objects not clearly further: most similar other %.4f vs least similar variant %.4f (want a gap >= 0.1)", maxOther, minClose)
			}
		})
	}
}

// TestTopLabel pins the top-1 ImageNet class of photos whose content was checked by eye.
func TestTopLabel(t *testing.T) {
	e := testEngine(t)
	cases := []struct{ file, label string }{
		{"ukbench00088.jpg", "acoustic guitar"}, // guitar with strap on a white table
		{"ukbench00100.jpg", "running shoe"},    // white Nike trainer on a wooden floor
		{"ukbench00132.jpg", "power drill"},     // Black & Decker drill on its manual
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			r := embedOne(t, e, Image{Data: readPhoto(t, c.file)})
			if len(r.Labels) != 5 {
				t.Fatalf("got %d labels, want 5", len(r.Labels))
			}
			if r.Labels[0].Name != c.label || r.Labels[0].Prob < 0.5 {
				t.Errorf("top-1 = %q (%.3f), want %q with p >= 0.5; top-5 %v", r.Labels[0].Name, r.Labels[0].Prob, c.label, r.Labels)
			}
			for i := 1; i < len(r.Labels); i++ {
				if r.Labels[i].Prob > r.Labels[i-1].Prob {
					t.Errorf("labels not sorted: %v", r.Labels)
				}
			}
			if r.Width != 640 || r.Height != 480 {
				t.Errorf("size %dx%d, want 640x480", r.Width, r.Height)
			}
		})
	}
}

func encode(t testing.TB, format string, m image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch format {
	case "gif":
		err = gif.Encode(&buf, m, &gif.Options{NumColors: 256})
	case "bmp":
		err = bmp.Encode(&buf, m)
	case "tiff":
		err = tiff.Encode(&buf, m, &tiff.Options{Compression: tiff.Deflate})
	case "png":
		err = png.Encode(&buf, m)
	case "jpeg":
		err = jpeg.Encode(&buf, m, &jpeg.Options{Quality: 95})
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func toNRGBA(m image.Image) *image.NRGBA {
	dst := image.NewNRGBA(m.Bounds())
	xdraw.Copy(dst, image.Point{}, m, m.Bounds(), xdraw.Src, nil)
	return dst
}

// TestFormats: the same picture in every supported format and pixel type embeds alike.
func TestFormats(t *testing.T) {
	e := testEngine(t)
	m := stdDecode(t, readPhoto(t, "ukbench00100.jpg"))
	ref := embedOne(t, e, Image{Data: encode(t, "png", m)}).Vector
	nrgba := toNRGBA(m)

	gray := image.NewGray(m.Bounds())
	xdraw.Copy(gray, image.Point{}, m, m.Bounds(), xdraw.Src, nil)
	grayRef := embedOne(t, e, Image{Data: encode(t, "png", gray)}).Vector

	rgb64 := image.NewRGBA64(m.Bounds())
	xdraw.Copy(rgb64, image.Point{}, m, m.Bounds(), xdraw.Src, nil)

	// Half-transparent white border, fully transparent corner: composited on white.
	alpha := toNRGBA(m)
	for y := 0; y < 480; y++ {
		for x := 0; x < 640; x++ {
			if x < 40 || y < 40 {
				alpha.SetNRGBA(x, y, color.NRGBA{0, 0, 0, 0})
			}
		}
	}
	white := toNRGBA(m)
	for y := 0; y < 480; y++ {
		for x := 0; x < 640; x++ {
			if x < 40 || y < 40 {
				white.SetNRGBA(x, y, color.NRGBA{255, 255, 255, 255})
			}
		}
	}
	whiteRef := embedOne(t, e, Image{Data: encode(t, "png", white)}).Vector

	webpLossless, err := webpEncodeRGBA(alpha.Pix, 640, 480)
	if err != nil {
		t.Fatal(err)
	}
	rgb := toRGB(m)
	webpLossy, err := webpEncodeRGB(rgb, 90)
	if err != nil {
		t.Fatal(err)
	}
	cmykPix := make([]byte, 640*480*4)
	for i := 0; i < 640*480; i++ { // Adobe convention: stored inverted, so C'=R, M'=G, Y'=B, K'=255
		cmykPix[4*i], cmykPix[4*i+1], cmykPix[4*i+2], cmykPix[4*i+3] = rgb.pix[3*i], rgb.pix[3*i+1], rgb.pix[3*i+2], 255
	}
	cmyk, err := turboEncodeCMYK(cmykPix, 640, 480)
	if err != nil {
		t.Fatal(err)
	}

	// animated GIF: the first frame is the photo, the second is black; only the first counts
	anim, err := gif.DecodeAll(bytes.NewReader(encode(t, "gif", m)))
	if err != nil {
		t.Fatal(err)
	}
	black := image.NewPaletted(anim.Image[0].Bounds(), anim.Image[0].Palette)
	anim.Image = append(anim.Image, black)
	anim.Delay = append(anim.Delay, 10)
	anim.Disposal = append(anim.Disposal, 0)
	var animBuf bytes.Buffer
	if err := gif.EncodeAll(&animBuf, anim); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, format string
		data         []byte
		ref          []float32
		min          float64
	}{
		{"gif animated (first frame)", "gif", animBuf.Bytes(), ref, 0.85},
		{"jpeg", "jpeg", encode(t, "jpeg", m), ref, 0.97},
		{"jpeg grayscale", "jpeg", encode(t, "jpeg", gray), grayRef, 0.97},
		{"jpeg cmyk (adobe)", "jpeg", cmyk, ref, 0.97},
		{"png 16-bit", "png", encode(t, "png", rgb64), ref, 0.999},
		{"png nrgba", "png", encode(t, "png", nrgba), ref, 0.999},
		{"png alpha on white", "png", encode(t, "png", alpha), whiteRef, 0.999},
		{"gif", "gif", encode(t, "gif", m), ref, 0.85},
		{"bmp", "bmp", encode(t, "bmp", m), ref, 0.999},
		{"tiff", "tiff", encode(t, "tiff", m), ref, 0.999},
		{"tiff 16-bit", "tiff", encode(t, "tiff", rgb64), ref, 0.999},
		{"webp lossless alpha", "webp", webpLossless, whiteRef, 0.999},
		{"webp lossy", "webp", webpLossy, ref, 0.95},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := DecodeConfig(c.data)
			if err != nil || cfg.Format != c.format || cfg.Width != 640 || cfg.Height != 480 {
				t.Fatalf("DecodeConfig = %+v, %v; want %s 640x480", cfg, err, c.format)
			}
			r := embedOne(t, e, Image{Data: c.data})
			if cos := cosine(c.ref, r.Vector); cos < c.min {
				t.Errorf("cosine %.4f to the PNG reference, want >= %.3f", cos, c.min)
			}
		})
	}
}

// exifJPEG inserts an APP1 Exif segment carrying orientation o after the SOI marker.
func exifJPEG(jpg []byte, o int, bigEndian bool) []byte {
	tiffHdr := []byte{'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, byte(o), 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if bigEndian {
		tiffHdr = []byte{'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, byte(o), 0, 0, 0, 0, 0, 0, 0, 0}
	}
	seg := append([]byte("Exif\x00\x00"), tiffHdr...)
	n := len(seg) + 2
	out := append([]byte{0xFF, 0xD8, 0xFF, 0xE1, byte(n >> 8), byte(n)}, seg...)
	return append(out, jpg[2:]...)
}

// storedFor returns the pixels a camera would store so that orientation o displays m upright.
func storedFor(m image.Image, o int) image.Image {
	b := m.Bounds()
	W, H := b.Dx(), b.Dy()
	sw, sh := W, H
	if o >= 5 {
		sw, sh = H, W
	}
	src := toRGB(m)
	dst := image.NewRGBA(image.Rect(0, 0, sw, sh))
	// orient maps stored (sx,sy) to display (x,y); invert it by brute force over display pixels.
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			var sx, sy int
			switch o {
			case 1:
				sx, sy = x, y
			case 2:
				sx, sy = sw-1-x, y
			case 3:
				sx, sy = sw-1-x, sh-1-y
			case 4:
				sx, sy = x, sh-1-y
			case 5:
				sx, sy = y, x
			case 6:
				sx, sy = y, sh-1-x
			case 7:
				sx, sy = sw-1-y, sh-1-x
			case 8:
				sx, sy = sw-1-y, x
			}
			i := 3 * (y*W + x)
			dst.Set(sx, sy, color.RGBA{src.pix[i], src.pix[i+1], src.pix[i+2], 255})
		}
	}
	return dst
}

// TestOrientation: every EXIF orientation yields the upright picture, and DecodeConfig and Crop
// use the oriented size.
func TestOrientation(t *testing.T) {
	e := testEngine(t)
	m := stdDecode(t, readPhoto(t, "ukbench00132.jpg"))
	ref := embedOne(t, e, Image{Data: encode(t, "png", m)}).Vector
	refCrop := embedOne(t, e, Image{Data: encode(t, "png", m), Crop: &Rect{X: 100, Y: 50, W: 300, H: 400}}).Vector
	for o := 1; o <= 8; o++ {
		t.Run(fmt.Sprint("orientation ", o), func(t *testing.T) {
			data := exifJPEG(encode(t, "jpeg", storedFor(m, o)), o, o%2 == 0)
			cfg, err := DecodeConfig(data)
			if err != nil || cfg.Width != 640 || cfg.Height != 480 || cfg.Orientation != o {
				t.Fatalf("DecodeConfig = %+v, %v; want 640x480 orientation %d", cfg, err, o)
			}
			r := embedOne(t, e, Image{Data: data})
			if cos := cosine(ref, r.Vector); cos < 0.97 {
				t.Errorf("cosine %.4f to the upright picture, want >= 0.97", cos)
			}
			rc := embedOne(t, e, Image{Data: data, Crop: &Rect{X: 100, Y: 50, W: 300, H: 400}})
			if cos := cosine(refCrop, rc.Vector); cos < 0.97 {
				t.Errorf("crop: cosine %.4f to the upright crop, want >= 0.97", cos)
			}
		})
	}
}
