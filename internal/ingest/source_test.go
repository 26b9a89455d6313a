package ingest

import (
	"context"
	"testing"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
)

// TestSourceRendition: with Policy.SourceSize the stored item keeps a JPEG rendition of its photo,
// no larger than the size, that embeds like the original (the catalog can be embedded again from
// it); without it the item keeps none. A profile stores vectors of that profile.
func TestSourceRendition(t *testing.T) {
	eng := testEngine(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		size int
	}{
		{"off", 0},
		{"512", 512},
		{"448", 448},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col := testCollection(t, eng)
			img := photo(t, 100) // 640x480
			res, err := Store(ctx, eng, col, []Input{{ID: "p", Image: img}}, Policy{SourceSize: tc.size})
			if err != nil || res[0].Err != nil {
				t.Fatalf("Store: %v %v", err, res[0].Err)
			}
			src, err := col.Source("p")
			if err != nil {
				t.Fatal(err)
			}
			if tc.size == 0 {
				if src != nil {
					t.Fatalf("a source rendition of %d bytes with SourceSize 0", len(src))
				}
				return
			}
			cfg, err := embed.DecodeConfig(src)
			if err != nil || cfg.Format != "jpeg" || max(cfg.Width, cfg.Height) != tc.size {
				t.Fatalf("source %+v (%v), want a JPEG with long side %d", cfg, err, tc.size)
			}
			it, err := col.Get("p")
			if err != nil {
				t.Fatal(err)
			}
			embs, err := eng.Embed(ctx, []embed.Image{{Data: src}})
			if err != nil || embs[0].Err != nil {
				t.Fatalf("embed the source: %v %v", err, embs[0].Err)
			}
			// Measured 0.974 at 512 px and 0.964 at 448 (the JPEG decoder's DCT scaling differs);
			// another photo of the same object scores about 0.85.
			if c := index.Dot(embs[0].Vector, it.Vector); c < 0.95 {
				t.Errorf("source embeds at cosine %.4f to the original's vector, want >= 0.95", c)
			}
		})
	}
}

// TestSourceRenditionKept: a photo that already is a rendition (a JPEG within the size, as when a
// catalog is embedded again from its renditions) is kept byte for byte, not encoded again.
func TestSourceRenditionKept(t *testing.T) {
	rendition, err := embed.Thumbnail(photo(t, 100), 512, 90, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		img  []byte
		same bool
	}{
		{"a 512 px rendition", rendition, true},
		{"a 640 px photo", photo(t, 100), false},
	} {
		got, err := SourceRendition(tc.img, Policy{SourceSize: 512, SourceQuality: 90})
		if err != nil {
			t.Fatal(err)
		}
		if same := string(got) == string(tc.img); same != tc.same {
			t.Errorf("%s: kept as is %v, want %v", tc.name, same, tc.same)
		}
	}
}
