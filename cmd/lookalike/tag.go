package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/lookalike/lookalike/api"
	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/eval"
	"github.com/lookalike/lookalike/index"
)

// runTag suggests metadata for a photo or an item (lookalike tag photo.jpg | --id ID), tags a whole
// collection (--all), or measures suggestion accuracy on Fashion-MNIST (tag eval).
func runTag(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) > 0 && args[0] == "eval" {
		return runTagEval(ctx, env, args[1:])
	}
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
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	cf.apply(&cfg)
	if *k <= 0 {
		*k = cfg.Intel.TagNeighbors
	}
	if *minConf < 0 {
		*minConf = cfg.Intel.TagMinConfidence
	}
	db, err := openDB(cfg, env)
	if err != nil {
		return err
	}
	defer db.Close()
	col, err := collectionFor(db, cfg, cf.collection, embed.Info{}, false)
	if err != nil {
		return err
	}
	if *all {
		total := api.TagReport{Written: map[string]int{}}
		cursor := ""
		for {
			rep, err := api.TagItems(ctx, col, cursor, 500, api.TagOptions{K: *k, MinConfidence: *minConf, Overwrite: *overwrite, DryRun: *dryRun})
			if err != nil {
				return err
			}
			total.Scanned += rep.Scanned
			total.Updated += rep.Updated
			total.LowConfidence += rep.LowConfidence
			for f, n := range rep.Written {
				total.Written[f] += n
			}
			total.Changes = append(total.Changes, rep.Changes...)
			if rep.NextCursor == "" {
				break
			}
			cursor = rep.NextCursor
		}
		total.DryRun = *dryRun
		if cf.asJSON {
			return writeJSON(env.stdout, total)
		}
		for _, ch := range total.Changes {
			fmt.Fprintf(env.stdout, "%s\t%s = %s\t(%.2f)\n", ch.ID, ch.Field, ch.Value, ch.Confidence)
		}
		verb := "updated"
		if *dryRun {
			verb = "would update"
		}
		fmt.Fprintf(env.stdout, "scanned %d items, %s %d, fields %v, %d suggestions below %.2f left out\n",
			total.Scanned, verb, total.Updated, total.Written, total.LowConfidence, *minConf)
		return nil
	}
	var vec []float32
	var labels []embed.Label
	if *id != "" {
		it, err := col.Get(*id)
		if err != nil {
			return fmt.Errorf("item %q: %w", *id, err)
		}
		vec = it.Vector
	} else {
		data, err := os.ReadFile(rest[0])
		if err != nil {
			return err
		}
		eng, err := newEngine(ctx, cfg, env)
		if err != nil {
			return err
		}
		defer eng.Close()
		if eng.Info().Fingerprint != col.Fingerprint() {
			return fmt.Errorf("collection %q: %w", col.Name(), index.ErrFingerprintMismatch)
		}
		embs, err := eng.Embed(ctx, []embed.Image{{Data: data}})
		if err != nil {
			return err
		}
		if embs[0].Err != nil {
			return fmt.Errorf("%s: %w", rest[0], embs[0].Err)
		}
		vec, labels = embs[0].Vector, embs[0].Labels
	}
	sug, err := api.SuggestTags(ctx, col, vec, *id, *k)
	if err != nil {
		return err
	}
	if cf.asJSON {
		return writeJSON(env.stdout, map[string]any{"suggestions": sug, "labels": labels})
	}
	fields := make([]string, 0, len(sug))
	for f := range sug {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		fmt.Fprintf(env.stdout, "%s:", f)
		for _, s := range sug[f] {
			fmt.Fprintf(env.stdout, " %s (%.2f)", s.Value, s.Confidence)
		}
		fmt.Fprintln(env.stdout)
	}
	if len(labels) > 0 {
		fmt.Fprint(env.stdout, "labels:")
		for _, l := range labels {
			fmt.Fprintf(env.stdout, " %s (%.2f)", l.Name, l.Prob)
		}
		fmt.Fprintln(env.stdout)
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
	fs := flag.NewFlagSet("lookalike tag eval", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.StringVar(&env.configPath, "config", "", "config file")
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
	cfg.Model.FeatureMapTensor = "" // not needed: faster
	ds, err := eval.FashionMNIST(*dir, *nTrain, *nTest)
	if err != nil {
		return err
	}
	eng, err := newEngine(ctx, cfg, env)
	if err != nil {
		return err
	}
	defer eng.Close()
	tmp, err := os.MkdirTemp("", "lookalike-tag-eval-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	opts := indexOptions(cfg, env)
	opts.NoSync = true
	db, err := index.Open(tmp, opts)
	if err != nil {
		return err
	}
	defer db.Close()
	info := eng.Info()
	col, err := db.CreateCollection("fashion", index.CollectionConfig{Fingerprint: info.Fingerprint, Dims: info.Dims})
	if err != nil {
		return err
	}
	start := time.Now()
	embedAll := func(stage string, imgs [][]byte) ([][]float32, error) {
		out := make([][]float32, len(imgs))
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
			for j, e := range embs {
				if e.Err != nil {
					return nil, e.Err
				}
				out[i+j] = e.Vector
			}
			if time.Since(last) > 10*time.Second {
				fmt.Fprintf(env.stderr, "  %s %d/%d\n", stage, i+len(batch), len(imgs))
				last = time.Now()
			}
		}
		return out, nil
	}
	var trainImgs, testImgs [][]byte
	for _, it := range ds.Database {
		trainImgs = append(trainImgs, it.Image.Data)
	}
	for _, q := range ds.Queries {
		testImgs = append(testImgs, q.Image.Data)
	}
	trainVecs, err := embedAll("train", trainImgs)
	if err != nil {
		return err
	}
	items := make([]index.Item, 0, len(trainVecs))
	for i, v := range trainVecs {
		meta, _ := json.Marshal(map[string]string{"category": ds.Database[i].Group})
		items = append(items, index.Item{ID: ds.Database[i].ID, Vector: v, Metadata: meta})
	}
	for i := 0; i < len(items); i += 1000 {
		if err := col.Upsert(ctx, items[i:min(i+1000, len(items))]...); err != nil {
			return err
		}
	}
	testVecs, err := embedAll("test", testImgs)
	if err != nil {
		return err
	}
	embedSecs := time.Since(start).Seconds()
	var reports []tagEvalReport
	for _, k := range kList {
		type pred struct {
			conf    float64
			correct bool
		}
		preds := make([]pred, 0, len(testVecs))
		correct := 0
		for i, v := range testVecs {
			sug, err := api.SuggestTags(ctx, col, v, "", k)
			if err != nil {
				return err
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
		rep := tagEvalReport{Train: len(trainVecs), Test: len(testVecs), K: k, TargetPrecision: *target, EmbedSeconds: embedSecs,
			Accuracy: float64(correct) / float64(len(preds))}
		for t := 0.30; t <= 1.0001; t += 0.05 {
			kept, ok := 0, 0
			for _, p := range preds {
				if p.conf >= t-1e-9 {
					kept++
					if p.correct {
						ok++
					}
				}
			}
			pt := tagEvalPoint{MinConfidence: round3(t), Coverage: round3(float64(kept) / float64(len(preds)))}
			if kept > 0 {
				pt.Precision = round3(float64(ok) / float64(kept))
			}
			rep.Curve = append(rep.Curve, pt)
			if rep.Threshold == nil && kept > 0 && pt.Precision >= *target {
				p := pt
				rep.Threshold = &p
			}
		}
		reports = append(reports, rep)
	}
	if *asJSON {
		return writeJSON(env.stdout, reports)
	}
	fmt.Fprintf(env.stdout, "Fashion-MNIST: %d train images indexed with their category, %d test images tagged (embedding %.0f s)\n",
		len(trainVecs), len(testVecs), embedSecs)
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

func round3(v float64) float64 { return float64(int(v*1000+0.5)) / 1000 }
