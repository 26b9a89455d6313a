package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/eval"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/intel"
	"github.com/lookalike/lookalike/internal/config"
)

// runTag suggests metadata for a photo or an item (lookalike tag photo.jpg | --id ID), tags a whole
// collection (--all), or measures suggestion accuracy on Fashion-MNIST (tag eval).
var runTag = withSub("eval", runTagEval, tagItems)

func tagItems(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "tag")
	cf := addCatalogFlags(fs, true)
	id := fs.String("id", "", "suggest for this stored item instead of a photo")
	k := fs.Int("k", 0, "neighbours voting (default intel.tag_neighbors)")
	all := fs.Bool("all", false, "bulk: fill the missing fields of every item with confident suggestions")
	minConf := fs.Float64("min-confidence", -1, "bulk: write only suggestions at or above this (default intel.tag_min_confidence)")
	overwrite := fs.Bool("overwrite", false, "bulk: replace curated values too")
	dryRun := fs.Bool("dry-run", false, "bulk: report without writing")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if !*all && (*id == "") == (len(rest) == 0) {
		return fmt.Errorf("%w: give one photo, --id ID, or --all", errUsage)
	}
	if cf.server != "" {
		o := intel.TagOptions{K: *k, MinConfidence: *minConf, Overwrite: *overwrite, DryRun: *dryRun}
		if *all {
			return remoteTagAll(ctx, env, cf, o)
		}
		return remoteSuggest(ctx, env, cf, *id, rest, *k)
	}
	cfg, db, col, err := cf.open(env)
	if err != nil {
		return err
	}
	defer db.Close()
	if *k <= 0 {
		*k = cfg.Intel.TagNeighbors
	}
	if *minConf < 0 {
		*minConf = cfg.Intel.TagMinConfidence
	}
	if *all {
		return tagAll(ctx, env, col, cf.asJSON, intel.TagOptions{K: *k, MinConfidence: *minConf, Overwrite: *overwrite, DryRun: *dryRun})
	}
	var vec []float32
	var labels []embed.Label
	if *id != "" {
		it, err := col.Get(*id)
		if err != nil {
			return fmt.Errorf("item %q: %w", *id, err)
		}
		vec = it.Vector
	} else if vec, labels, err = embedPhoto(ctx, env, cfg, col, rest[0]); err != nil {
		return err
	}
	sug, err := intel.SuggestTags(ctx, col, vec, *id, *k)
	if err != nil {
		return err
	}
	return printSuggestions(env, sug, labels, cf.asJSON)
}

// tagAll tags the whole collection, a page of 500 items at a time.
func tagAll(ctx context.Context, env *cliEnv, col *index.Collection, asJSON bool, o intel.TagOptions) error {
	total := intel.TagReport{Written: map[string]int{}, Changes: []intel.TagChange{}}
	for cursor := ""; ; {
		rep, err := intel.TagItems(ctx, col, cursor, 500, o)
		if err != nil {
			return err
		}
		total.Add(rep)
		if cursor = rep.NextCursor; cursor == "" {
			break
		}
	}
	return printTagReport(env, total, asJSON, fmt.Sprintf("%.2f", o.MinConfidence))
}

// printTagReport prints a bulk tagging (done here or through --server); threshold says which
// minimum confidence left suggestions out.
func printTagReport(env *cliEnv, total intel.TagReport, asJSON bool, threshold string) error {
	if asJSON {
		return writeJSON(env.stdout, total)
	}
	for _, ch := range total.Changes {
		fmt.Fprintf(env.stdout, "%s\t%s = %s\t(%.2f)\n", ch.ID, ch.Field, ch.Value, ch.Confidence)
	}
	verb := "updated"
	if total.DryRun {
		verb = "would update"
	}
	fmt.Fprintf(env.stdout, "scanned %s, %s %d; values written per field: %s; %s below %s left out\n",
		plural(total.Scanned, "item"), verb, total.Updated, counts(total.Written), plural(total.LowConfidence, "suggestion"), threshold)
	return nil
}

// embedPhoto embeds one photo with the configured model, which must be the collection's.
func embedPhoto(ctx context.Context, env *cliEnv, cfg config.Config, col *index.Collection, path string) ([]float32, []embed.Label, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	eng, err := newEngine(ctx, cfg, env)
	if err != nil {
		return nil, nil, err
	}
	defer eng.Close()
	if _, ok := eng.Info().ProfileFor(col.Fingerprint()); !ok {
		return nil, nil, fmt.Errorf("collection %q: %w", col.Name(), index.ErrFingerprintMismatch)
	}
	embs, err := eng.Embed(ctx, []embed.Image{{Data: data, Profile: profileOf(eng, col)}})
	if err != nil {
		return nil, nil, err
	}
	if embs[0].Err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, embs[0].Err)
	}
	return embs[0].Vector, embs[0].Labels, nil
}

// printSuggestions prints the suggestions for one photo or item (made here or through --server).
func printSuggestions(env *cliEnv, sug map[string][]intel.TagSuggestion, labels []embed.Label, asJSON bool) error {
	if asJSON {
		return writeJSON(env.stdout, map[string]any{"suggestions": sug, "labels": labels})
	}
	w := env.stdout
	if len(sug) == 0 {
		fmt.Fprintln(w, "no suggestions (no field whose values the nearest labelled items share)")
	}
	fields := make([]string, 0, len(sug))
	for f := range sug {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		fmt.Fprintf(w, "%s:", f)
		for _, s := range sug[f] {
			fmt.Fprintf(w, " %s (%.2f)", s.Value, s.Confidence)
		}
		fmt.Fprintln(w)
	}
	if len(labels) > 0 {
		fmt.Fprint(w, "labels:")
		for _, l := range labels {
			fmt.Fprintf(w, " %s (%.2f)", l.Name, l.Prob)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// tagEvalReport is what lookalike tag eval measures.
type tagEvalReport struct {
	Train, Test int
	K           int
	Accuracy    float64
	Curve       []tagEvalPoint
	// Threshold is the lowest confidence at which the suggestions kept reach TargetPrecision.
	TargetPrecision float64
	Threshold       *tagEvalPoint
	EmbedSeconds    float64
}

type tagEvalPoint struct {
	MinConfidence float64 `json:"min_confidence"`
	Precision     float64 `json:"precision"`
	Coverage      float64 `json:"coverage"`
}

// runTagEval indexes Fashion-MNIST training images with their category, suggests a category for
// each test image, and reports accuracy and the precision/coverage of confidence thresholds.
func runTagEval(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "tag eval")
	dir := fs.String("dir", "/usr/share/datasets/fashion-mnist", "Fashion-MNIST idx files")
	nTrain := fs.Int("train", 20000, "training images indexed with their category (0 = all 60000)")
	nTest := fs.Int("test", 2000, "test images tagged (0 = all 10000)")
	ks := fs.String("k", "5,15,30", "neighbours voting (comma-separated to compare)")
	target := fs.Float64("precision", 0.95, "target precision for the confidence threshold")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	kList, err := parseInts(*ks)
	if err != nil || len(kList) == 0 {
		return fmt.Errorf("%w: --k: want positive integers", errUsage)
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	dropFeatureMap(&cfg)
	ds, err := eval.FashionMNIST(*dir, *nTrain, *nTest)
	if err != nil {
		return err
	}
	eng, err := newEngine(ctx, cfg, env)
	if err != nil {
		return err
	}
	defer eng.Close()
	start := time.Now()
	col, closeDB, trainN, testVecs, err := indexFashion(ctx, env, cfg, eng, ds)
	if err != nil {
		return err
	}
	defer closeDB()
	embedSecs := time.Since(start).Seconds()
	var reports []tagEvalReport
	for _, k := range kList {
		rep, err := tagEvalK(ctx, col, ds, testVecs, k, *target)
		if err != nil {
			return err
		}
		rep.Train, rep.EmbedSeconds = trainN, embedSecs
		reports = append(reports, rep)
	}
	if *asJSON {
		return writeJSON(env.stdout, reports)
	}
	fmt.Fprintf(env.stdout, "Fashion-MNIST: %d train images indexed with their category, %d test images tagged (embedding %.0f s)\n",
		trainN, len(testVecs), embedSecs)
	for _, r := range reports {
		fmt.Fprintf(env.stdout, "\nk=%d  accuracy of the top suggestion: %.3f\n", r.K, r.Accuracy)
		fmt.Fprintf(env.stdout, "  min_confidence  precision  coverage\n")
		for _, p := range r.Curve {
			fmt.Fprintf(env.stdout, "  %14.2f  %9.3f  %8.3f\n", p.MinConfidence, p.Precision, p.Coverage)
		}
		if r.Threshold != nil {
			fmt.Fprintf(env.stdout, "  precision >= %.2f from confidence %.2f, covering %.1f%% of the test images\n",
				r.TargetPrecision, r.Threshold.MinConfidence, 100*r.Threshold.Coverage)
		} else {
			fmt.Fprintf(env.stdout, "  no confidence threshold reaches precision %.2f\n", r.TargetPrecision)
		}
	}
	return nil
}

// indexFashion indexes the training images with their category in a temporary collection and
// embeds the test images. closeDB removes the collection.
func indexFashion(ctx context.Context, env *cliEnv, cfg config.Config, eng *embed.Engine, ds *eval.Dataset) (col *index.Collection, closeDB func(), trainN int, testVecs [][]float32, err error) {
	tmp, err := os.MkdirTemp("", "lookalike-tag-eval-")
	if err != nil {
		return nil, nil, 0, nil, err
	}
	opts := indexOptions(cfg, env)
	opts.NoSync = true
	db, err := index.Open(tmp, opts)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, nil, 0, nil, err
	}
	closeDB = func() {
		db.Close()
		os.RemoveAll(tmp)
	}
	fail := func(err error) (*index.Collection, func(), int, [][]float32, error) {
		closeDB()
		return nil, nil, 0, nil, err
	}
	info := eng.Info()
	if col, err = db.CreateCollection("fashion", index.CollectionConfig{Fingerprint: info.Fingerprint, Dims: info.Dims}); err != nil {
		return fail(err)
	}
	progress := func(stage string) func(done, total int) {
		return func(done, total int) { fmt.Fprintf(env.stderr, "  %s %d/%d\n", stage, done, total) }
	}
	var trainImgs, testImgs [][]byte
	for _, it := range ds.Database {
		trainImgs = append(trainImgs, it.Image.Data)
	}
	for _, q := range ds.Queries {
		testImgs = append(testImgs, q.Image.Data)
	}
	trainVecs, err := embedVectors(ctx, eng, trainImgs, progress("train"))
	if err != nil {
		return fail(err)
	}
	items := make([]index.Item, 0, len(trainVecs))
	for i, v := range trainVecs {
		meta, _ := json.Marshal(map[string]string{"category": ds.Database[i].Group})
		items = append(items, index.Item{ID: ds.Database[i].ID, Vector: v, Metadata: meta})
	}
	for i := 0; i < len(items); i += 1000 {
		if err := col.Upsert(ctx, items[i:min(i+1000, len(items))]...); err != nil {
			return fail(err)
		}
	}
	if testVecs, err = embedVectors(ctx, eng, testImgs, progress("test")); err != nil {
		return fail(err)
	}
	return col, closeDB, len(trainVecs), testVecs, nil
}

// tagEvalK suggests a category for every test vector with k neighbours and reads off the
// precision and coverage of each confidence threshold.
func tagEvalK(ctx context.Context, col *index.Collection, ds *eval.Dataset, testVecs [][]float32, k int, target float64) (tagEvalReport, error) {
	type pred struct {
		conf    float64
		correct bool
	}
	preds := make([]pred, 0, len(testVecs))
	correct := 0
	for i, v := range testVecs {
		sug, err := intel.SuggestTags(ctx, col, v, "", k)
		if err != nil {
			return tagEvalReport{}, err
		}
		p := pred{}
		if s := sug["category"]; len(s) > 0 {
			p = pred{conf: s[0].Confidence, correct: s[0].Value == ds.Queries[i].Group}
		}
		if p.correct {
			correct++
		}
		preds = append(preds, p)
	}
	rep := tagEvalReport{Test: len(testVecs), K: k, TargetPrecision: target, Accuracy: float64(correct) / float64(len(preds))}
	for pct := 30; pct <= 100; pct += 5 {
		t := float64(pct) / 100 // exact in decimal: no accumulated float steps to round away
		kept, ok := 0, 0
		for _, p := range preds {
			if p.conf >= t-1e-9 {
				kept++
				if p.correct {
					ok++
				}
			}
		}
		pt := tagEvalPoint{MinConfidence: t, Coverage: float64(kept) / float64(len(preds))}
		if kept > 0 {
			pt.Precision = float64(ok) / float64(kept)
		}
		rep.Curve = append(rep.Curve, pt)
		if rep.Threshold == nil && kept > 0 && pt.Precision >= target {
			p := pt
			rep.Threshold = &p
		}
	}
	return rep, nil
}

// embedAll embeds images 64 at a time; progress (may be nil) hears of it every 10 s at most.
func embedAll(ctx context.Context, eng *embed.Engine, imgs [][]byte, progress func(done, total int)) ([]embed.Embedding, error) {
	out := make([]embed.Embedding, 0, len(imgs))
	const chunk = 64
	last := time.Now()
	for i := 0; i < len(imgs); i += chunk {
		batch := make([]embed.Image, 0, chunk)
		for _, b := range imgs[i:min(i+chunk, len(imgs))] {
			batch = append(batch, embed.Image{Data: b})
		}
		embs, err := eng.Embed(ctx, batch)
		if err != nil {
			return nil, err
		}
		for _, e := range embs {
			if e.Err != nil {
				return nil, e.Err
			}
		}
		out = append(out, embs...)
		if progress != nil && time.Since(last) > 10*time.Second {
			progress(len(out), len(imgs))
			last = time.Now()
		}
	}
	return out, nil
}

// embedVectors is embedAll keeping only the vectors.
func embedVectors(ctx context.Context, eng *embed.Engine, imgs [][]byte, progress func(done, total int)) ([][]float32, error) {
	embs, err := embedAll(ctx, eng, imgs, progress)
	if err != nil {
		return nil, err
	}
	vecs := make([][]float32, len(embs))
	for i, e := range embs {
		vecs[i] = e.Vector
	}
	return vecs, nil
}
