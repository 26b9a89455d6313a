package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"strings"

	"golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/lookalike/lookalike/intel"
)

// runDupes prints the duplicate clusters of a collection; dupes calibrate measures the tiers on
// edited copies of the UKBench photos (calibrate.go).
var runDupes = withSub("calibrate", runDupesCalibrate, listDupes)

// withSub makes a command whose first argument may name its one subcommand (dupes calibrate,
// tag eval): the offline measurement that goes with it.
func withSub(name string, sub, main func(context.Context, *cliEnv, []string) error) func(context.Context, *cliEnv, []string) error {
	return func(ctx context.Context, env *cliEnv, args []string) error {
		if len(args) > 0 && args[0] == name {
			return sub(ctx, env, args[1:])
		}
		return main(ctx, env, args)
	}
}

func listDupes(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "dupes")
	cf := addCatalogFlags(fs, true)
	tier := fs.String("tier", "near", "minimum tier: exact, near or similar")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if err := checkTier(*tier); err != nil {
		return err
	}
	if cf.server != "" {
		return remoteDupes(ctx, env, cf, *tier)
	}
	cfg, db, col, err := cf.open(env)
	if err != nil {
		return err
	}
	defer db.Close()
	clusters := []intel.DupCluster{}
	det := intel.NewDetector(intel.ForFingerprint(cfg.Intel, col.Fingerprint()), &intel.SignatureCache{})
	for cursor := ""; ; {
		page, err := det.FindDuplicates(ctx, col, *tier, cursor, 1000)
		if err != nil {
			return err
		}
		clusters = append(clusters, page.Clusters...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	return printDupes(env, *tier, clusters, cf.asJSON)
}

// printDupes prints duplicate clusters (found here or through --server): the kept candidate first,
// then each member with its tier and score.
func printDupes(env *cliEnv, tier string, clusters []intel.DupCluster, asJSON bool) error {
	if asJSON {
		return writeJSON(env.stdout, map[string]any{"tier": tier, "clusters": clusters})
	}
	for _, cl := range clusters {
		parts := make([]string, 0, len(cl.Items))
		for i, m := range cl.Items {
			if i == 0 {
				parts = append(parts, m.ID)
				continue
			}
			parts = append(parts, fmt.Sprintf("%s (%s %.3f)", m.ID, m.Tier, m.Score))
		}
		fmt.Fprintln(env.stdout, strings.Join(parts, "  "))
	}
	fmt.Fprintf(env.stdout, "%s at tier %s or above\n", plural(len(clusters), "cluster"), tier)
	return nil
}

// checkTier refuses an unknown tier before anything is opened or sent.
func checkTier(tier string) error {
	switch tier {
	case intel.TierExact, intel.TierNear, intel.TierSimilar:
		return nil
	}
	return fmt.Errorf("%w: --tier %q: want exact, near or similar", errUsage, tier)
}

// An edit applied to a photo, and the tier the result has relative to the original: the copies a
// catalog gets by re-encoding, resizing, cropping, watermarking or relighting a photo are near
// duplicates; the same product in another colour (a hue rotation) is similar, never near.
type photoEdit struct {
	name  string
	truth string
	apply func(img image.Image, data []byte) ([]byte, error)
}

func photoEdits() []photoEdit {
	enc := func(img image.Image, q int) ([]byte, error) {
		var buf bytes.Buffer
		err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q})
		return buf.Bytes(), err
	}
	return []photoEdit{
		{"copy", intel.TierExact, func(_ image.Image, data []byte) ([]byte, error) { return bytes.Clone(data), nil }},
		{"reencode-q50", intel.TierNear, func(img image.Image, _ []byte) ([]byte, error) { return enc(img, 50) }},
		{"resize-50%", intel.TierNear, func(img image.Image, _ []byte) ([]byte, error) {
			b := img.Bounds()
			dst := image.NewRGBA(image.Rect(0, 0, b.Dx()/2, b.Dy()/2))
			draw.CatmullRom.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
			return enc(dst, 85)
		}},
		{"crop-10%", intel.TierNear, func(img image.Image, _ []byte) ([]byte, error) {
			// 10% off the left and 10% off the top: 81% of the area remains, off centre.
			b := img.Bounds()
			r := image.Rect(b.Min.X+b.Dx()/10, b.Min.Y+b.Dy()/10, b.Max.X, b.Max.Y)
			dst := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
			draw.Copy(dst, image.Point{}, img, r, draw.Src, nil)
			return enc(dst, 85)
		}},
		{"watermark", intel.TierNear, func(img image.Image, _ []byte) ([]byte, error) {
			b := img.Bounds()
			dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
			draw.Copy(dst, image.Point{}, img, b, draw.Src, nil)
			watermark(dst, "(c) LOOKALIKE SAMPLE")
			return enc(dst, 85)
		}},
		{"brightness+25%", intel.TierNear, func(img image.Image, _ []byte) ([]byte, error) {
			b := img.Bounds()
			dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
			for y := range b.Dy() {
				for x := range b.Dx() {
					r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
					f := func(v uint32) uint8 { return uint8(math.Min(255, float64(v>>8)*1.25)) }
					dst.SetRGBA(x, y, color.RGBA{f(r), f(g), f(bl), 255})
				}
			}
			return enc(dst, 85)
		}},
		hueEdit(30), hueEdit(60), hueEdit(120), hueEdit(180),
	}
}

// hueEdit rotates every pixel's hue by deg (HSV), keeping saturation and value: a product photo
// on a white or grey background becomes the same product in another colour.
func hueEdit(deg float64) photoEdit {
	return photoEdit{fmt.Sprintf("hue%+.0f°", deg), intel.TierSimilar, func(img image.Image, _ []byte) ([]byte, error) {
		b := img.Bounds()
		dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
		for y := range b.Dy() {
			for x := range b.Dx() {
				r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
				dst.SetRGBA(x, y, rotateHue(float64(r>>8), float64(g>>8), float64(bl>>8), deg))
			}
		}
		var buf bytes.Buffer
		err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 85})
		return buf.Bytes(), err
	}}
}

// rotateHue turns an RGB colour (0..255) by deg around the HSV hue circle.
func rotateHue(r, g, b, deg float64) color.RGBA {
	mx, mn := max(r, g, b), min(r, g, b)
	if mx == mn {
		return color.RGBA{uint8(r), uint8(g), uint8(b), 255}
	}
	d := mx - mn
	var h float64
	switch mx {
	case r:
		h = math.Mod((g-b)/d, 6)
	case g:
		h = (b-r)/d + 2
	default:
		h = (r-g)/d + 4
	}
	h = math.Mod(h*60+deg+720, 360) / 60
	x := d * (1 - math.Abs(math.Mod(h, 2)-1))
	var rr, gg, bb float64
	switch int(h) {
	case 0:
		rr, gg = d, x
	case 1:
		rr, gg = x, d
	case 2:
		gg, bb = d, x
	case 3:
		gg, bb = x, d
	case 4:
		rr, bb = x, d
	default:
		rr, bb = d, x
	}
	return color.RGBA{uint8(rr + mn + 0.5), uint8(gg + mn + 0.5), uint8(bb + mn + 0.5), 255}
}

// watermark writes text across the lower third in semi-transparent white, 4x the basic font's size.
func watermark(dst *image.RGBA, text string) {
	face := basicfont.Face7x13
	w := font.MeasureString(face, text).Ceil()
	small := image.NewRGBA(image.Rect(0, 0, w+2, 16))
	d := &font.Drawer{Dst: small, Src: image.NewUniform(color.RGBA{255, 255, 255, 255}), Face: face, Dot: fixed.P(1, 12)}
	d.DrawString(text)
	scale := max(1, dst.Bounds().Dx()*3/4/(w+2))
	big := image.NewRGBA(image.Rect(0, 0, (w+2)*scale, 16*scale))
	draw.NearestNeighbor.Scale(big, big.Bounds(), small, small.Bounds(), draw.Src, nil)
	at := image.Pt((dst.Bounds().Dx()-big.Bounds().Dx())/2, dst.Bounds().Dy()*2/3)
	mask := image.NewUniform(color.Alpha{150})
	draw.DrawMask(dst, big.Bounds().Add(at), big, image.Point{}, mask, image.Point{}, draw.Over)
}
