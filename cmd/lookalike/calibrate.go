package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/eval"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/intel"
	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/internal/locate"
)

// lookalike dupes calibrate: the 140 grouped UKBench photos (35 objects x 4) and edited copies of
// each (photoEdits: six near-duplicates and four hue rotations, which are colour variants of the
// product and must not be near). Every (copy, original) pair and every pair of originals is
// classified. The objects are split in two: thresholds are read off the sweep of the tuning half
// (even groups) and the confusion is reported on the held-out half (odd groups) and on all.

var tierOrder = []string{intel.TierExact, intel.TierNear, intel.TierSimilar, intel.TierNone}

// calibPhoto is an original or an edited copy of one.
type calibPhoto struct {
	group, edit, truth string // truth: a copy's tier relative to its original
	orig               int    // index of its original
	half               int    // 0: tuning half (even groups), 1: held-out half (odd groups)
	vec                []float32
	thumb              []byte
	sig                *intel.PixelSignature
}

// calibPair is one classified pair; px is measured only at or above the similar gate.
type calibPair struct {
	truth, edit string // edit: the copy's edit when the pair is a copy and its own original
	half        int    // 0 or 1 when both photos are in that half, 2 across the halves
	cos         float32
	same        bool
	px          intel.PixelScore
}

func runDupesCalibrate(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "dupes calibrate")
	dir := fs.String("dir", "", "UKBench folder (default: found under the dataset folders)")
	near := fs.Float64("near", 0, "near-duplicate cosine gate to evaluate (default intel.near_duplicate_score)")
	similar := fs.Float64("similar", 0, "similar threshold to evaluate (default intel.similar_score)")
	pixel := fs.Float64("pixel", -1, "luminance pixel match to evaluate (default intel.pixel_match)")
	chroma := fs.Float64("chroma", -1, "chroma match to evaluate (default intel.chroma_match)")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	dropFeatureMap(&cfg)
	if *dir == "" {
		if *dir, err = locate.Dir("ukbench", locate.DatasetDirs()); err != nil {
			return err
		}
	}
	t := intel.TiersFrom(cfg.Intel)
	if *near > 0 {
		t.Near = float32(*near)
	}
	if *similar > 0 {
		t.Similar = float32(*similar)
	}
	if *pixel >= 0 {
		t.Pixel = *pixel
	}
	if *chroma >= 0 {
		t.Chroma = *chroma
	}
	originals, copies, err := loadCalibrationSet(ctx, env, cfg, *dir)
	if err != nil {
		return err
	}
	rep := calibrate(calibPairs(originals, copies, t.Similar), t)
	rep.Originals, rep.Copies = len(originals), len(copies)
	if *asJSON {
		return writeJSON(env.stdout, rep)
	}
	rep.print(env.stdout)
	return nil
}

// loadCalibrationSet reads, edits, embeds and thumbnails the grouped photos of dir.
func loadCalibrationSet(ctx context.Context, env *cliEnv, cfg config.Config, dir string) (originals, copies []calibPhoto, err error) {
	ds, err := eval.UKBench(dir)
	if err != nil {
		return nil, nil, err
	}
	edits := photoEdits()
	var imgs [][]byte
	var photos []calibPhoto
	groups := map[string]int{}
	for _, it := range ds.Database {
		if it.Group == "" {
			continue
		}
		if _, ok := groups[it.Group]; !ok {
			groups[it.Group] = len(groups)
		}
		half := groups[it.Group] % 2
		data, err := os.ReadFile(it.Image.Path)
		if err != nil {
			return nil, nil, err
		}
		img, _, err := image.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", it.Image.Path, err)
		}
		oi := len(originals)
		originals = append(originals, calibPhoto{group: it.Group, edit: filepath.Base(it.Image.Path), orig: oi, half: half})
		imgs, photos = append(imgs, data), append(photos, originals[oi])
		for _, e := range edits {
			b, err := e.apply(img, data)
			if err != nil {
				return nil, nil, err
			}
			imgs = append(imgs, b)
			photos = append(photos, calibPhoto{group: it.Group, edit: e.name, truth: e.truth, orig: oi, half: half})
		}
	}
	fmt.Fprintf(env.stderr, "embedding %d originals and %d edited copies\n", len(originals), len(imgs)-len(originals))
	eng, err := newEngine(ctx, cfg, env)
	if err != nil {
		return nil, nil, err
	}
	defer eng.Close()
	embs, err := embedAll(ctx, eng, imgs, nil)
	if err != nil {
		return nil, nil, err
	}
	for i, e := range embs {
		p := &photos[i]
		if p.thumb, err = embed.Thumbnail(imgs[i], cfg.Limits.ThumbnailSize, cfg.Limits.ThumbnailQuality, cfg.Limits.MaxPixels); err != nil {
			return nil, nil, err
		}
		if p.sig, err = intel.NewPixelSignature(p.thumb); err != nil {
			return nil, nil, err
		}
		p.vec = e.Vector
		if p.truth == "" {
			originals[p.orig] = *p
		} else {
			copies = append(copies, *p)
		}
	}
	return originals, copies, nil
}

// calibPairs classifies every (copy, original) pair and every pair of originals.
func calibPairs(originals, copies []calibPhoto, gate float32) []calibPair {
	pair := func(a, b *calibPhoto, truth, edit string) calibPair {
		p := calibPair{truth: truth, edit: edit, half: 2, cos: index.Dot(a.vec, b.vec), same: bytes.Equal(a.thumb, b.thumb)}
		if a.half == b.half {
			p.half = a.half
		}
		if p.cos >= gate {
			p.px = intel.Compare(a.sig, b.sig)
		}
		return p
	}
	var out []calibPair
	for i := range copies {
		c := &copies[i]
		for oi := range originals {
			o := &originals[oi]
			switch {
			case oi == c.orig:
				out = append(out, pair(c, o, c.truth, c.edit))
			case o.group == c.group:
				out = append(out, pair(c, o, intel.TierSimilar, ""))
			default:
				out = append(out, pair(c, o, intel.TierNone, ""))
			}
		}
	}
	// Originals among themselves: group-mates are the "similar" truth that near must not catch.
	for i := range originals {
		for j := i + 1; j < len(originals); j++ {
			truth := intel.TierNone
			if originals[i].group == originals[j].group {
				truth = intel.TierSimilar
			}
			out = append(out, pair(&originals[i], &originals[j], truth, ""))
		}
	}
	return out
}

// calibStats is the confusion of one subset of the pairs.
type calibStats struct {
	Pairs          int                       `json:"pairs"`
	Confusion      map[string]map[string]int `json:"confusion"` // truth → predicted → pairs
	Recall         float64                   `json:"near_duplicate_recall"`
	Precision      float64                   `json:"near_duplicate_precision"`
	FalsePositives int                       `json:"false_positives"`
}

// editStats describes one edit: copies against their own original.
type editStats struct {
	Edit     string     `json:"edit"`
	Truth    string     `json:"truth"`
	AsNear   float64    `json:"found_near_or_exact"` // recall for near edits, false-positive rate for the others
	Cos      [4]float64 `json:"cosine"`              // min, p05, median, max
	Luma     [4]float64 `json:"luma"`
	Chroma   [4]float64 `json:"chroma"`
	ChromaTu [4]float64 `json:"chroma_tuning_half"`
}

type sweepCell struct {
	Pixel     float64 `json:"pixel"`
	Chroma    float64 `json:"chroma"`
	Recall    float64 `json:"recall"`
	Precision float64 `json:"precision"`
}

type calibReport struct {
	Thresholds intel.Tiers `json:"thresholds"`
	Originals  int         `json:"originals"`
	Copies     int         `json:"copies"`
	Tune       calibStats  `json:"tuning_half"`
	HeldOut    calibStats  `json:"held_out_half"`
	All        calibStats  `json:"all"`
	Edits      []editStats `json:"edits"`
	Sweep      []sweepCell `json:"sweep_tuning_half"` // at the configured cosine gate
}

func isDup(t string) bool { return t == intel.TierExact || t == intel.TierNear }

func confusion(pairs []calibPair, t intel.Tiers, keep func(*calibPair) bool) calibStats {
	st := calibStats{Confusion: map[string]map[string]int{}}
	for _, tr := range tierOrder {
		st.Confusion[tr] = map[string]int{}
	}
	var tp, fn int
	for i := range pairs {
		p := &pairs[i]
		if !keep(p) {
			continue
		}
		st.Pairs++
		pred := t.PairTier(p.cos, p.same, p.px)
		st.Confusion[p.truth][pred]++
		switch {
		case isDup(p.truth) && isDup(pred):
			tp++
		case isDup(p.truth):
			fn++
		case isDup(pred):
			st.FalsePositives++
		}
	}
	st.Recall = float64(tp) / math.Max(1, float64(tp+fn))
	st.Precision = float64(tp) / math.Max(1, float64(tp+st.FalsePositives))
	return st
}

func calibrate(pairs []calibPair, t intel.Tiers) calibReport {
	rep := calibReport{Thresholds: t,
		Tune:    confusion(pairs, t, func(p *calibPair) bool { return p.half == 0 }),
		HeldOut: confusion(pairs, t, func(p *calibPair) bool { return p.half == 1 }),
		All:     confusion(pairs, t, func(*calibPair) bool { return true }),
	}
	for _, e := range photoEdits() {
		st := editStats{Edit: e.name, Truth: e.truth}
		var cos, luma, chroma, chromaTu []float64
		found := 0
		for i := range pairs {
			p := &pairs[i]
			if p.edit != e.name {
				continue
			}
			cos, luma, chroma = append(cos, float64(p.cos)), append(luma, p.px.Luma), append(chroma, p.px.Chroma)
			if p.half == 0 {
				chromaTu = append(chromaTu, p.px.Chroma)
			}
			if isDup(t.PairTier(p.cos, p.same, p.px)) {
				found++
			}
		}
		st.AsNear = float64(found) / math.Max(1, float64(len(cos)))
		st.Cos, st.Luma, st.Chroma, st.ChromaTu = quartet(cos), quartet(luma), quartet(chroma), quartet(chromaTu)
		rep.Edits = append(rep.Edits, st)
	}
	tune := func(p *calibPair) bool { return p.half == 0 }
	for _, px := range []float64{0.92, 0.94, 0.96} {
		for _, ch := range []float64{0, 0.7, 0.8, 0.84, 0.86, 0.88, 0.9, 0.92} {
			tt := t
			tt.Pixel, tt.Chroma = px, ch
			st := confusion(pairs, tt, tune)
			rep.Sweep = append(rep.Sweep, sweepCell{Pixel: px, Chroma: ch, Recall: st.Recall, Precision: st.Precision})
		}
	}
	return rep
}

// quartet is min, p05, median, max.
func quartet(v []float64) [4]float64 {
	if len(v) == 0 {
		return [4]float64{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	at := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s)-1)+0.5))] }
	return [4]float64{s[0], at(0.05), at(0.5), s[len(s)-1]}
}

func (rep calibReport) print(w io.Writer) {
	t := rep.Thresholds
	fmt.Fprintf(w, "UKBench %d originals (groups of 4), %d edited copies; near = cosine >= %.3f AND luma >= %.3f AND chroma >= %.3f; similar = cosine >= %.3f\n",
		rep.Originals, rep.Copies, t.Near, t.Pixel, t.Chroma, t.Similar)
	for _, s := range []struct {
		name string
		st   calibStats
	}{{"held-out half (odd groups)", rep.HeldOut}, {"tuning half (even groups)", rep.Tune}, {"all", rep.All}} {
		fmt.Fprintf(w, "\n%s: confusion (rows: truth, columns: predicted), %d pairs\n%-10s", s.name, s.st.Pairs, "")
		for _, tr := range tierOrder {
			fmt.Fprintf(w, " %9s", tr)
		}
		fmt.Fprintln(w)
		for _, truth := range tierOrder {
			fmt.Fprintf(w, "%-10s", truth)
			for _, pred := range tierOrder {
				fmt.Fprintf(w, " %9d", s.st.Confusion[truth][pred])
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "near-duplicate (exact or near) recall %.3f, precision %.3f (false positives: %d pairs)\n",
			s.st.Recall, s.st.Precision, s.st.FalsePositives)
	}
	fmt.Fprintf(w, "\n%-15s %-8s %6s   %-27s   %-27s   %-27s   %s\n", "edit (vs its", "truth", "as", "cosine", "luma", "chroma", "chroma, tuning half")
	fmt.Fprintf(w, "%-15s %-8s %6s   %-27s   %-27s   %-27s   %s\n", " original)", "", "near", "min p05 median max", "min p05 median max", "min p05 median max", "min p05 median max")
	for _, e := range rep.Edits {
		fmt.Fprintf(w, "%-15s %-8s %6.3f   %s   %s   %s   %s\n", e.Edit, e.Truth, e.AsNear, fq(e.Cos), fq(e.Luma), fq(e.Chroma), fq(e.ChromaTu))
	}
	fmt.Fprintf(w, "\nsweep on the tuning half at cosine >= %.2f: recall/precision by luma (rows) and chroma (columns) thresholds\n%-6s", t.Near, "luma")
	var chromas []float64
	for _, c := range rep.Sweep {
		if !slices.Contains(chromas, c.Chroma) {
			chromas = append(chromas, c.Chroma)
			fmt.Fprintf(w, "  chroma %.2f", c.Chroma)
		}
	}
	for i, c := range rep.Sweep {
		if i%len(chromas) == 0 {
			fmt.Fprintf(w, "\n%-6.2f", c.Pixel)
		}
		fmt.Fprintf(w, "  %.3f/%.3f", c.Recall, c.Precision)
	}
	fmt.Fprintln(w)
}

func fq(q [4]float64) string {
	return fmt.Sprintf("%6.3f %6.3f %6.3f %6.3f", q[0], q[1], q[2], q[3])
}
