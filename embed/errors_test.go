package embed

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/png"
	"testing"

	"github.com/lookalike/lookalike/embed/spec"
)

// hugePNG is a valid PNG header announcing w x h pixels, followed by nothing useful.
func hugePNG(w, h uint32) []byte {
	var buf bytes.Buffer
	buf.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	buf.Write([]byte{0, 0, 0, 13})
	buf.WriteString("IHDR")
	buf.Write(ihdr)
	buf.Write([]byte{0, 0, 0, 0}) // CRC is not checked by DecodeConfig? keep honest: compute below
	b := buf.Bytes()
	crc := pngCRC(b[12 : 12+4+13])
	binary.BigEndian.PutUint32(b[12+4+13:], crc)
	return append(b, []byte{0, 0, 0, 0, 'I', 'D', 'A', 'T', 0x35, 0xaf, 0x06, 0x1e}...)
}

func pngCRC(b []byte) uint32 {
	var tab [256]uint32
	for i := range tab {
		c := uint32(i)
		for k := 0; k < 8; k++ {
			if c&1 == 1 {
				c = 0xedb88320 ^ (c >> 1)
			} else {
				c >>= 1
			}
		}
		tab[i] = c
	}
	c := ^uint32(0)
	for _, x := range b {
		c = tab[byte(c)^x] ^ (c >> 8)
	}
	return ^c
}

// hugeJPEG patches the SOF dimensions of a small JPEG to w x h.
func hugeJPEG(t testing.TB, small []byte, w, h uint16) []byte {
	b := append([]byte(nil), small...)
	for i := 2; i+9 < len(b); {
		if b[i] != 0xFF {
			t.Fatal("bad marker walk")
		}
		m := b[i+1]
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if m == 0xC0 || m == 0xC1 || m == 0xC2 {
			binary.BigEndian.PutUint16(b[i+5:], h)
			binary.BigEndian.PutUint16(b[i+7:], w)
			return b
		}
		i += 2 + n
	}
	t.Fatal("no SOF")
	return nil
}

func smallPNG(t testing.TB) []byte {
	m := image.NewRGBA(image.Rect(0, 0, 8, 8))
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBadInputs: every kind of bad input gets its typed error from DecodeConfig and from Embed,
// and the good image of the same batch is still embedded.
func TestBadInputs(t *testing.T) {
	e := testEngine(t)
	photo := readPhoto(t, "ukbench00000.jpg")
	pngB := smallPNG(t)
	cases := []struct {
		name     string
		img      Image
		want     error
		onlyEmbd bool // DecodeConfig reads the header only and cannot see it
	}{
		{"empty", Image{}, ErrEmpty, false},
		{"text", Image{Data: []byte("hello, this is not a picture")}, ErrNotImage, false},
		{"html", Image{Data: []byte("<!doctype html><html></html>")}, ErrNotImage, false},
		{"jpeg magic only", Image{Data: []byte{0xFF, 0xD8, 0xFF}}, ErrCorrupt, false},
		{"jpeg truncated header", Image{Data: photo[:100]}, ErrCorrupt, false},
		{"jpeg truncated data", Image{Data: photo[:len(photo)/2]}, ErrCorrupt, true},
		{"jpeg garbage after header", Image{Data: append(append([]byte(nil), photo[:700]...), bytes.Repeat([]byte{0x55}, 5000)...)}, ErrCorrupt, true},
		{"jpeg 60000x60000", Image{Data: hugeJPEG(t, photo, 60000, 60000)}, ErrTooLarge, true},
		{"png 100000x100000", Image{Data: hugePNG(100000, 100000)}, ErrTooLarge, true},
		{"png truncated", Image{Data: pngB[:len(pngB)-20]}, ErrCorrupt, true},
		{"png bad header", Image{Data: append([]byte("\x89PNG\r\n\x1a\n"), 1, 2, 3)}, ErrCorrupt, false},
		{"gif truncated", Image{Data: []byte("GIF89a\x10\x00")}, ErrCorrupt, false},
		{"webp truncated", Image{Data: []byte("RIFF\x20\x00\x00\x00WEBPVP8 ")}, ErrCorrupt, false},
		{"bmp garbage", Image{Data: append([]byte("BM"), bytes.Repeat([]byte{0xff}, 60)...)}, ErrUnsupported, false},
		{"tiff header only", Image{Data: []byte("II*\x00\x08\x00\x00\x00")}, ErrCorrupt, false},
		{"crop outside", Image{Data: photo, Crop: &Rect{X: 600, Y: 0, W: 100, H: 100}}, ErrBadCrop, true},
		{"crop empty", Image{Data: photo, Crop: &Rect{X: 0, Y: 0, W: 0, H: 10}}, ErrBadCrop, true},
		{"crop negative", Image{Data: photo, Crop: &Rect{X: -1, Y: 0, W: 10, H: 10}}, ErrBadCrop, true},
	}
	batch := []Image{{Data: photo}}
	for _, c := range cases {
		batch = append(batch, c.img)
	}
	res, err := e.Embed(context.Background(), batch)
	if err != nil {
		t.Fatalf("Embed: whole-call error %v for per-image failures", err)
	}
	if res[0].Err != nil || len(res[0].Vector) == 0 {
		t.Errorf("good image in a bad batch: %v", res[0].Err)
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := res[i+1].Err; !errors.Is(got, c.want) {
				t.Errorf("Embed error = %v, want %v", got, c.want)
			}
			if res[i+1].Vector != nil {
				t.Errorf("failed image has a vector")
			}
			if !c.onlyEmbd {
				if _, err := DecodeConfig(c.img.Data); !errors.Is(err, c.want) {
					t.Errorf("DecodeConfig error = %v, want %v", err, c.want)
				}
			}
		})
	}
	t.Run("pixel limit is configurable", func(t *testing.T) {
		if _, err := decodeImage(photo, nil, limits{pixels: 640*480 - 1}, wantScale(spec.DefaultModel())); !errors.Is(err, ErrTooLarge) {
			t.Errorf("limit 640*480-1: %v, want ErrTooLarge", err)
		}
		if _, err := decodeImage(photo, nil, limits{pixels: 640 * 480}, wantScale(spec.DefaultModel())); err != nil {
			t.Errorf("limit 640*480: %v", err)
		}
		if _, err := Thumbnail(hugePNG(100000, 100000), 256, 80, 0); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Thumbnail of a bomb: %v, want ErrTooLarge", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := e.Embed(ctx, []Image{{Data: photo}}); !errors.Is(err, context.Canceled) {
			t.Errorf("Embed with a cancelled context: %v, want context.Canceled", err)
		}
	})
}

func TestThumbnail(t *testing.T) {
	photo := readPhoto(t, "ukbench00100.jpg")
	cases := []struct {
		name         string
		data         []byte
		side         int
		wantW, wantH int
	}{
		{"downscale", photo, 160, 160, 120},
		{"no upscale", photo, 2000, 640, 480},
		{"orientation 6", exifJPEG(photo, 6, false), 160, 120, 160},
		{"png", smallPNG(t), 4, 4, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Thumbnail(c.data, c.side, 80, 0)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := DecodeConfig(b)
			if err != nil || cfg.Format != "jpeg" || cfg.Width != c.wantW || cfg.Height != c.wantH {
				t.Errorf("thumbnail %+v %v, want jpeg %dx%d", cfg, err, c.wantW, c.wantH)
			}
		})
	}
}
