package api

import (
	"bytes"
	"image"
	"net/http"
	"testing"

	"github.com/lookalike/lookalike/internal/config"
)

// TestSourceRendition: /source serves the item's source rendition (larger than the thumbnail) when
// it was stored, the thumbnail when not (limits.source_size 0), and 404 for an unknown item.
func TestSourceRendition(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sourceSize int // 0: no source renditions
		rendition  string
		minSide    int
		maxSide    int
	}{
		{"source stored", 640, "source", 257, 640},
		{"thumbnail fallback", 0, "thumbnail", 1, 256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, func(c *config.Config) { c.Limits.SourceSize = tc.sourceSize })
			ts.addPhoto(t, ukName(4), `{}`)
			r := do(t, "GET", ts.url+"/v1/collections/default/items/ukbench00004/source", "", nil)
			if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/jpeg" || r.header.Get("X-Rendition") != tc.rendition {
				t.Fatalf("GET source: %d %v, want 200 image/jpeg X-Rendition %s", r.status, r.header, tc.rendition)
			}
			cfg, _, err := image.DecodeConfig(bytes.NewReader(r.body))
			if side := max(cfg.Width, cfg.Height); err != nil || side < tc.minSide || side > tc.maxSide {
				t.Fatalf("source photo %+v (%v): want a long side in %d..%d", cfg, err, tc.minSide, tc.maxSide)
			}
			if r := do(t, "GET", ts.url+"/v1/collections/default/items/nope/source", "", nil); r.status != http.StatusNotFound {
				t.Fatalf("GET source of an unknown item: %d %s, want 404", r.status, r.body)
			}
		})
	}
}
