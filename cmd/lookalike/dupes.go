package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/lookalike/lookalike/api"
	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/eval"
	"github.com/lookalike/lookalike/internal/locate"
)

// runDupes prints the duplicate clusters of a collection, or (dupes calibrate) measures the tiers
// on edited copies of the UKBench photos.
func runDupes(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) > 0 && args[0] == "calibrate" {
		return runDupesCalibrate(ctx, env, args[1:])
	}
	fs := newFlags(env, "dupes")
	cf := addCatalogFlags(fs, true)
	tier := fs.String("tier", "near", "minimum tier: exact, near or similar")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	cfg, db, col, err := cf.open(env)
	if err != nil {
		return err
	}
	defer db.Close()
	var clusters []api.DupCluster
	cursor := ""
	for {
		page, err := api.FindDuplicates(ctx, col, api.TiersFrom(cfg.Intel), *tier, cursor, 1000, &api.SignatureCache{})
		if err != nil {
			return err
		}
		clusters = append(clusters, page.Clusters...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if cf.asJSON {
		return writeJSON(env.stdout, map[string]any{"tier": *tier, "clusters": clusters})
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
	fmt.Fprintf(env.stdout, "%d clusters at tier %s or above\n", len(clusters), *tier)
	return nil
}

// An edit applied to a photo, and the tier the result has relative to the original.
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
		{"copy", api.TierExact, func(_ image.Image, data []byte) ([]byte, error) { return bytes.Clone(data), nil }},
		{"reencode-q50", api.TierNear, func(img image.Image, _ []byte) ([]byte, error) { return enc(img, 50) }},
		{"resize-50%", api.TierNear, func(img image.Image, _ []byte) ([]byte, error) {
			b := img.Bounds()
			dst := image.NewRGBA(image.Rect(0, 0, b.Dx()/2, b.Dy()/2))
			draw.CatmullRom.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
			return enc(dst, 85)
		}},
		{"crop-10%", api.TierNear, func(img image.Image, _ []byte) ([]byte, error) {
			// 10% off the left and 10% off the top: 81% of the area remains, off centre.
			b := img.Bounds()
			r := image.Rect(b.Min.X+b.Dx()/10, b.Min.Y+b.Dy()/10, b.Max.X, b.Max.Y)
			dst := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
			draw.Copy(dst, image.Point{}, img, r, draw.Src, nil)
			return enc(dst, 85)
		}},
		{"watermark", api.TierNear, func(img image.Image, _ []byte) ([]byte, error) {
			b := img.Bounds()
			dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
			draw.Copy(dst, image.Point{}, img, b, draw.Src, nil)
			watermark(dst, "(c) LOOKALIKE SAMPLE")
			return enc(dst, 85)
		}},
		{"brightness+25%", api.TierNear, func(img image.Image, _ []byte) ([]byte, error) {
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
	}
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

var tierOrder = []string{api.TierExact, api.TierNear, api.TierSimilar, api.TierNone}

// runDupesCalibrate embeds the grouped UKBench photos and edited copies of each, classifies every
// (copy, original) pair with the configured tiers and prints the confusion table, near-duplicate
// precision and recall, and the score ranges each threshold separates.
func runDupesCalibrate(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("lookalike dupes calibrate", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.StringVar(&env.configPath, "config", "", "config file")
	dir := fs.String("dir", "", "UKBench folder (default: found under the dataset folders)")
	near := fs.Float64("near", 0, "near-duplicate threshold to evaluate (default intel.near_duplicate_score)")
	similar := fs.Float64("similar", 0, "similar threshold to evaluate (default intel.similar_score)")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	cfg.Model.FeatureMapTensor = ""
	if *dir == "" {
		if *dir, err = locate.Dir("ukbench", locate.DatasetDirs()); err != nil {
			return err
		}
	}
	tiers := api.TiersFrom(cfg.Intel)
	if *near > 0 {
		tiers.Near = float32(*near)
	}
	if *similar > 0 {
		tiers.Similar = float32(*similar)
	}
	ds, err := eval.UKBench(*dir)
	if err != nil {
		return err
	}
	eng, err := newEngine(ctx, cfg, env)
	if err != nil {
		return err
	}
	defer eng.Close()
	type photo struct {
		group, edit, truthOf string
		vec                  []float32
		thumb                []byte
		sig                  *api.PixelSignature
		orig                 int  // index of its original among the originals
		isOrig               bool // an original itself
	}
	var originals, copies []photo
	edits := photoEdits()
	var imgs [][]byte
	var meta []photo
	for _, it := range ds.Database {
		if it.Group == "" {
			continue
		}
		data, err := os.ReadFile(it.Image.Path)
		if err != nil {
			return err
		}
		img, _, err := image.Decode(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%s: %w", it.Image.Path, err)
		}
		oi := len(originals)
		originals = append(originals, photo{group: it.Group, edit: filepath.Base(it.Image.Path), orig: oi, isOrig: true})
		imgs = append(imgs, data)
		meta = append(meta, photo{orig: oi, isOrig: true})
		for _, e := range edits {
			b, err := e.apply(img, data)
			if err != nil {
				return err
			}
			imgs = append(imgs, b)
			meta = append(meta, photo{group: it.Group, edit: e.name, truthOf: e.truth, orig: oi})
		}
	}
	fmt.Fprintf(env.stderr, "embedding %d originals and %d edited copies\n", len(originals), len(imgs)-len(originals))
	for i := 0; i < len(imgs); i += 64 {
		batch := make([]embed.Image, 0, 64)
		for _, b := range imgs[i:min(i+64, len(imgs))] {
			batch = append(batch, embed.Image{Data: b})
		}
		embs, err := eng.Embed(ctx, batch)
		if err != nil {
			return err
		}
		for j, e := range embs {
			if e.Err != nil {
				return e.Err
			}
			thumb, err := embed.Thumbnail(imgs[i+j], cfg.Limits.ThumbnailSize, cfg.Limits.ThumbnailQuality, cfg.Limits.MaxPixels)
			if err != nil {
				return err
			}
			m := meta[i+j]
			m.vec, m.thumb = e.Vector, thumb
			if m.sig, err = api.NewPixelSignature(thumb); err != nil {
				return err
			}
			if m.isOrig {
				originals[m.orig].vec, originals[m.orig].thumb, originals[m.orig].sig = m.vec, m.thumb, m.sig
				continue
			}
			copies = append(copies, m)
		}
	}
	dot := func(a, b []float32) float32 {
		var s float32
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	confusion := map[string]map[string]int{}
	for _, t := range tierOrder {
		confusion[t] = map[string]int{}
	}
	type cand struct {
		truth    string
		cos, pix float64
	}
	var cands []cand // pairs at or above the similar threshold, for the sweep
	pixByTruth := map[string][]float64{}
	pixOf := func(a, b photo, s float32) float64 {
		if s < tiers.Similar {
			return 0
		}
		return api.PixelMatch(a.sig, b.sig)
	}
	scores := map[string][]float64{}     // truth class → scores
	editScores := map[string][]float64{} // edit → score with its original
	editRecall := map[string][2]int{}    // edit → (found near/exact, total)
	for _, c := range copies {
		for oi, o := range originals {
			s := dot(c.vec, o.vec)
			truth := api.TierNone
			switch {
			case oi == c.orig:
				truth = c.truthOf
			case o.group == c.group:
				truth = api.TierSimilar
			}
			pix := pixOf(c, o, s)
			if s >= tiers.Similar {
				cands = append(cands, cand{truth, float64(s), pix})
				pixByTruth[truth] = append(pixByTruth[truth], pix)
			}
			pred := tiers.PairTier(s, bytes.Equal(c.thumb, o.thumb), pix)
			confusion[truth][pred]++
			scores[truth] = append(scores[truth], float64(s))
			if oi == c.orig {
				editScores[c.edit] = append(editScores[c.edit], float64(s))
				r := editRecall[c.edit]
				r[1]++
				if pred == api.TierExact || pred == api.TierNear {
					r[0]++
				}
				editRecall[c.edit] = r
			}
		}
	}
	// Originals among themselves: group-mates are the "similar" truth that near must not catch.
	for i := range originals {
		for j := i + 1; j < len(originals); j++ {
			s := dot(originals[i].vec, originals[j].vec)
			truth := api.TierNone
			if originals[i].group == originals[j].group {
				truth = api.TierSimilar
			}
			pix := pixOf(originals[i], originals[j], s)
			if s >= tiers.Similar {
				cands = append(cands, cand{truth, float64(s), pix})
				pixByTruth[truth] = append(pixByTruth[truth], pix)
			}
			confusion[truth][tiers.PairTier(s, bytes.Equal(originals[i].thumb, originals[j].thumb), pix)]++
			scores[truth] = append(scores[truth], float64(s))
		}
	}
	isDup := func(t string) bool { return t == api.TierExact || t == api.TierNear }
	var tp, fn, fp int
	for truth, row := range confusion {
		for pred, n := range row {
			switch {
			case isDup(truth) && isDup(pred):
				tp += n
			case isDup(truth):
				fn += n
			case isDup(pred):
				fp += n
			}
		}
	}
	q := func(v []float64, p float64) float64 {
		if len(v) == 0 {
			return math.NaN()
		}
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[min(len(s)-1, int(p*float64(len(s)-1)+0.5))]
	}
	recall, precision := float64(tp)/math.Max(1, float64(tp+fn)), float64(tp)/math.Max(1, float64(tp+fp))
	if *asJSON {
		return writeJSON(env.stdout, map[string]any{
			"near_threshold": tiers.Near, "similar_threshold": tiers.Similar, "confusion": confusion,
			"near_duplicate_recall": recall, "near_duplicate_precision": precision, "edit_recall": editRecall,
		})
	}
	w := env.stdout
	fmt.Fprintf(w, "UKBench %d originals (%d groups of 4), %d edited copies; thresholds near %.3f, similar %.3f\n\n",
		len(originals), len(originals)/4, len(copies), tiers.Near, tiers.Similar)
	fmt.Fprintf(w, "confusion (rows: truth, columns: predicted), pairs\n%-10s", "")
	for _, t := range tierOrder {
		fmt.Fprintf(w, " %9s", t)
	}
	fmt.Fprintln(w)
	for _, truth := range tierOrder {
		fmt.Fprintf(w, "%-10s", truth)
		for _, pred := range tierOrder {
			fmt.Fprintf(w, " %9d", confusion[truth][pred])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nnear-duplicate (exact or near) recall %.3f, precision %.3f (false positives: %d pairs)\n\n", recall, precision, fp)
	fmt.Fprintf(w, "%-16s %7s %7s %7s %7s\n", "edit", "recall", "min", "p05", "median")
	for _, e := range edits {
		r, v := editRecall[e.name], editScores[e.name]
		fmt.Fprintf(w, "%-16s %7.3f %7.3f %7.3f %7.3f\n", e.name, float64(r[0])/math.Max(1, float64(r[1])), q(v, 0), q(v, 0.05), q(v, 0.5))
	}
	fmt.Fprintf(w, "\nscores by truth:  %-8s %7s %7s %7s %7s %7s\n", "", "min", "p05", "median", "p95", "max")
	for _, t := range tierOrder {
		v := scores[t]
		fmt.Fprintf(w, "                  %-8s %7.3f %7.3f %7.3f %7.3f %7.3f\n", t, q(v, 0), q(v, 0.05), q(v, 0.5), q(v, 0.95), q(v, 1))
	}
	fmt.Fprintf(w, "\npixel match of pairs with cosine >= %.2f, by truth:\n", tiers.Similar)
	for _, t := range tierOrder {
		v := pixByTruth[t]
		fmt.Fprintf(w, "                  %-8s %7.3f %7.3f %7.3f %7.3f %7.3f  (%d pairs)\n", t, q(v, 0), q(v, 0.05), q(v, 0.5), q(v, 0.95), q(v, 1), len(v))
	}
	totalDup := tp + fn
	fmt.Fprintf(w, "\nsweep: near = cosine >= gate AND pixel match >= pixel (recall / precision)\n%-6s", "gate")
	pixes := []float64{0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96}
	for _, p := range pixes {
		fmt.Fprintf(w, "   pixel %.2f", p)
	}
	fmt.Fprintln(w)
	for _, g := range []float64{0.80, 0.85, 0.88, 0.90, 0.92} {
		fmt.Fprintf(w, "%-6.2f", g)
		for _, p := range pixes {
			var tp, fp int
			for _, c := range cands {
				if c.cos >= g && c.pix >= p {
					if isDup(c.truth) {
						tp++
					} else {
						fp++
					}
				}
			}
			fmt.Fprintf(w, "  %.3f/%.3f", float64(tp)/math.Max(1, float64(totalDup)), float64(tp)/math.Max(1, float64(tp+fp)))
		}
		fmt.Fprintln(w)
	}
	return nil
}
