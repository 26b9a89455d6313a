package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/eval"
	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/internal/locate"
	"github.com/lookalike/lookalike/rerank"
)

// fashionMNISTDir is where the Debian package dataset-fashion-mnist installs the idx files.
const fashionMNISTDir = "/usr/share/datasets/fashion-mnist"

func runEval(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "eval")
	dataset := fs.String("dataset", "", "ukbench | oxford5k | fashion-mnist | a folder (one sub-folder per group) | a CSV/JSONL manifest with a group column")
	dir := fs.String("dir", "", "dataset folder (default: found under ../shared/datasets, or "+fashionMNISTDir+")")
	distractors := fs.String("distractors", "", "folder of extra, irrelevant photos added to the database (e.g. the Oxford photos)")
	groupField := fs.String("group-field", "group", "manifest metadata field holding the group")
	limitTrain := fs.Int("limit-train", 0, "fashion-mnist: index only the first N training images (0 = all 60 000)")
	limitTest := fs.Int("limit-test", 0, "fashion-mnist: query only the first N test images (0 = all 10 000)")
	ks := fs.String("k", "1,4,10", "cut-offs of precision@k, recall@k and mAP@k")
	depth := fs.Int("depth", 0, "results ranked per query (0 = whole database up to 999 for oxford5k, else 100)")
	noExact := fs.Bool("no-exact", false, "skip the exact-search pass")
	dumpDir := fs.String("dump-vectors", "", "write each embedding variant's database and query vectors, with the queries' relevance, to DIR/variant-<n>.json (for scripts/rerank-reference)")
	asJSON := fs.Bool("json", false, "print JSON (one object, or an array with --compare)")
	var base eval.Config
	fs.IntVar(&base.Ef, "ef", 0, "efSearch (0 = index.ef_search from the config)")
	fs.IntVar(&base.QE, "qe", 0, "average query expansion with the top N results (0 = off)")
	fs.StringVar(&base.Pool, "pool", "avg", "avg (the model's embedding) or gem (GeM pooling of the last feature map)")
	fs.Float64Var(&base.GeMP, "gem-p", 3, "GeM exponent")
	fs.StringVar(&base.DBCrop, "db-crop", "", "preprocessing crop for database images: center or squash (default: the model spec's)")
	fs.IntVar(&base.InputSize, "size", 0, "model input size override (0 = the model spec's)")
	fs.StringVar(&base.Profile, "profile", "", "descriptor profile: "+strings.Join(spec.ProfileNames(), ", ")+" or rmac:S1,S2,... (default: model.profile)")
	fs.StringVar(&base.Project, "project", "", "learned per-region projection of a regional profile, learned here from the database photos without labels: pca512 or pca256 (plain PCA, pca<dims>), pw512 (PCA-whitening, pw<dims>[/<power>]) (default: none)")
	projectSample := fs.Int("project-sample", 0, fmt.Sprintf("with --project: learn from at most N database photos, an even stride (0 = %d); N >= the database size embeds it once for every projection", eval.DefaultProjectSample))
	rerankFlag := fs.String("rerank", "none", "re-ranking: none, qe (expansion over the top 2), kr (k-reciprocal), qe+kr, or all (the four side by side)")
	selfQueries := fs.String("self-queries", "similar", "with --rerank, a query that is a database item (UKBench) is asked as similar (its stored row) or by its vector (as image search would)")
	compare := fs.String("compare", "", `more configurations, as overrides of the first, separated by ';': e.g. "qe=5", "ef=16; ef=200", "db-crop=squash pool=gem", "rerank=kr", "profile=ms448", "project=pca512", "rerank=qe+kr kr-scale=1024"; the first is the baseline of the differences`)
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		if *dataset != "" || len(rest) > 1 {
			return fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
		}
		*dataset = rest[0]
	}
	if *dataset == "" {
		return fmt.Errorf("%w: --dataset is required (ukbench, oxford5k, fashion-mnist or a folder/manifest)", errUsage)
	}
	cfgs, err := evalConfigs(base, *rerankFlag, *selfQueries, *compare)
	if err != nil {
		return err
	}
	kList, err := parseInts(*ks)
	if err != nil || len(kList) == 0 {
		return fmt.Errorf("%w: --k: want a comma-separated list of positive integers", errUsage)
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	log := env.logger(cfg)

	ds, err := loadDataset(*dataset, *dir, *groupField, *limitTrain, *limitTest)
	if err != nil {
		return err
	}
	if *distractors != "" {
		if err := eval.AddDistractors(ds, *distractors); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.stderr, "eval %s: %d database images, %d queries\n", ds.Name, len(ds.Database), len(ds.Queries))

	engineFor, closeEngines := evalEngines(cfg, env)
	defer closeEngines()
	progress := evalProgress(env, *asJSON)
	start := time.Now()
	reports, err := eval.Run(ctx, ds, cfgs, eval.Options{
		Spec: cfg.Model, Engine: engineFor, Ks: kList, Depth: *depth, SkipExact: *noExact,
		Index: *indexOptions(cfg, env), ProjectSample: *projectSample,
		DumpDir: *dumpDir, Progress: progress, Logger: log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "eval finished in %.1f s\n", time.Since(start).Seconds())
	if *asJSON {
		if len(reports) == 1 {
			return writeJSON(env.stdout, reports[0])
		}
		return writeJSON(env.stdout, reports)
	}
	return eval.WriteTable(env.stdout, reports)
}

// evalEngines starts one engine per model spec the configurations ask for, on first use; close
// stops them all.
func evalEngines(cfg config.Config, env *cliEnv) (engineFor func(context.Context, spec.Model) (eval.Embedder, error), close func()) {
	engines := map[string]*embed.Engine{}
	engineFor = func(ctx context.Context, m spec.Model) (eval.Embedder, error) {
		key := fmt.Sprintf("%+v", m)
		if e, ok := engines[key]; ok {
			return e, nil
		}
		c := cfg
		c.Model = m
		e, err := newEngine(ctx, c, env)
		if err != nil {
			return nil, err
		}
		engines[key] = e
		return e, nil
	}
	return engineFor, func() {
		for _, e := range engines {
			e.Close()
		}
	}
}

func loadDataset(name, dir, groupField string, limitTrain, limitTest int) (*eval.Dataset, error) {
	find := func(sub string) (string, error) {
		if dir != "" {
			return dir, nil
		}
		d, err := locate.Dir(sub, locate.DatasetDirs())
		if err != nil {
			return "", fmt.Errorf("dataset %s not found (pass --dir): %w", name, err)
		}
		return d, nil
	}
	switch name {
	case "ukbench":
		d, err := find("ukbench")
		if err != nil {
			return nil, err
		}
		return eval.UKBench(d)
	case "oxford5k", "oxford":
		d, err := find("oxford5k-subset")
		if err != nil {
			return nil, err
		}
		return eval.Oxford(d)
	case "fashion-mnist":
		d := dir
		if d == "" {
			d = fashionMNISTDir
		}
		if _, err := os.Stat(d); err != nil {
			return nil, fmt.Errorf("fashion-mnist not found at %s (apt-get install dataset-fashion-mnist): %w", d, err)
		}
		return eval.FashionMNIST(d, limitTrain, limitTest)
	}
	if _, err := os.Stat(name); err != nil {
		return nil, fmt.Errorf("%w: --dataset %q is neither ukbench, oxford5k, fashion-mnist nor an existing folder or manifest", errUsage, name)
	}
	return eval.Folder(name, groupField)
}

// evalConfigs is the configurations to measure: the flags' (base, with --rerank and
// --self-queries), then --rerank all's other modes, then --compare's.
func evalConfigs(base eval.Config, rerankFlag, selfQueries, compare string) ([]eval.Config, error) {
	extra, err := applyRerankFlags(&base, rerankFlag, selfQueries)
	if err != nil {
		return nil, err
	}
	cfgs := []eval.Config{base}
	for _, spec := range append(extra, strings.Split(compare, ";")...) {
		if strings.TrimSpace(spec) == "" {
			continue
		}
		c, err := applyOverrides(base, spec)
		if err != nil {
			return nil, err
		}
		cfgs = append(cfgs, c)
	}
	for _, c := range cfgs {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	return cfgs, nil
}

// evalProgress prints each stage's progress to stderr: every 5 s, or (with --json) only when a
// stage starts and ends.
func evalProgress(env *cliEnv, asJSON bool) func(stage string, done, total int) {
	lastStage, lastPrint := "", time.Time{}
	return func(stage string, done, total int) {
		if asJSON && stage == lastStage && done != total {
			return
		}
		if stage != lastStage || done == total || time.Since(lastPrint) > 5*time.Second {
			fmt.Fprintf(env.stderr, "  %-16s %d/%d\n", stage, done, total)
			lastStage, lastPrint = stage, time.Now()
		}
	}
}

// applyRerankFlags sets --rerank and --self-queries on base; --rerank all returns the other modes
// as --compare overrides.
func applyRerankFlags(base *eval.Config, mode, selfQueries string) (extra []string, err error) {
	switch selfQueries {
	case "similar":
	case "vector":
		base.SelfAsVector = true
	default:
		return nil, fmt.Errorf("%w: --self-queries must be similar or vector", errUsage)
	}
	if strings.EqualFold(strings.TrimSpace(mode), "all") {
		for _, m := range rerank.Modes[1:] {
			extra = append(extra, "rerank="+m.String())
		}
		return extra, nil
	}
	if base.Rerank, err = rerank.ParseMode(mode); err != nil {
		return nil, fmt.Errorf("%w: --rerank: %v", errUsage, err)
	}
	return nil, nil
}

// applyOverrides parses "key=value" pairs (space or comma separated) over c.
func applyOverrides(c eval.Config, spec string) (eval.Config, error) {
	c.Label = ""
	for _, kv := range strings.FieldsFunc(spec, func(r rune) bool { return r == ' ' || r == ',' }) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return c, fmt.Errorf("%w: --compare: want key=value, got %q", errUsage, kv)
		}
		k = strings.TrimPrefix(k, "--")
		var err error
		switch k {
		case "ef":
			c.Ef, err = strconv.Atoi(v)
		case "qe":
			c.QE, err = strconv.Atoi(v)
		case "pool":
			c.Pool = v
		case "gem-p":
			c.GeMP, err = strconv.ParseFloat(v, 64)
		case "db-crop":
			c.DBCrop = v
		case "size":
			c.InputSize, err = strconv.Atoi(v)
		case "profile":
			c.Profile = v
		case "project":
			c.Project = v
		case "rerank":
			c.Rerank, err = rerank.ParseMode(v)
		case "self":
			if v != "similar" && v != "vector" {
				err = errors.New("want similar or vector")
			}
			c.SelfAsVector = v == "vector"
		case "kr-scale": // none (or 0): 1 - cosine as is; default; or a sample size
			switch v {
			case "none", "0":
				c.KRScale = -1
			case "default":
				c.KRScale = 0
			default:
				if c.KRScale, err = strconv.Atoi(v); err == nil && c.KRScale <= 0 {
					err = errors.New("want none, default or a sample size")
				}
			}
		case "label":
			c.Label = v
		default:
			err = errors.New("unknown key (ef, qe, pool, gem-p, db-crop, size, profile, project, rerank, self, kr-scale, label)")
		}
		if err != nil {
			return c, fmt.Errorf("%w: --compare %s: %v", errUsage, kv, err)
		}
	}
	return c, nil
}
