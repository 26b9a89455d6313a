package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/lookalike/lookalike/client"
	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/internal/ingest"
	"github.com/lookalike/lookalike/rerank"
)

// catalogFlags are the flags every catalog command shares.
type catalogFlags struct {
	remoteFlags      // --server, --key: through a running server's API (remote.go)
	data, collection string
	asJSON           bool
	// profile is the descriptor profile a new collection gets ("" = model.profile); only index
	// takes it (--profile).
	profile string
}

func addCatalogFlags(fs *flag.FlagSet, withJSON bool) *catalogFlags {
	f := &catalogFlags{}
	fs.StringVar(&f.data, "data", "", "data directory (default from the config: data.dir)")
	fs.StringVar(&f.collection, "collection", "", "collection (default from the config: data.default_collection)")
	if withJSON {
		fs.BoolVar(&f.asJSON, "json", false, "print JSON")
	}
	f.remoteFlags.register(fs)
	return f
}

func (f *catalogFlags) apply(cfg *config.Config) {
	if f.data != "" {
		cfg.Data.Dir = f.data
	}
	if f.collection == "" {
		f.collection = cfg.Data.DefaultCollection
	}
}

// open loads the config, applies the flags and opens their existing collection (any model
// fingerprint: the caller checks it where vectors are made). The caller closes the DB.
func (f *catalogFlags) open(env *cliEnv) (config.Config, *index.DB, *index.Collection, error) {
	cfg, err := env.loadConfig()
	if err != nil {
		return cfg, nil, nil, err
	}
	f.apply(&cfg)
	db, err := openDB(cfg, env)
	if err != nil {
		return cfg, nil, nil, err
	}
	col, err := collectionFor(db, cfg, f.collection, embed.Info{}, "", false)
	if err != nil {
		db.Close()
		return cfg, nil, nil, err
	}
	return cfg, db, col, nil
}

// openWithEngine starts the embedding engine and opens the flags' collection for its fingerprint
// (created when create is set). The caller closes both.
func (f *catalogFlags) openWithEngine(ctx context.Context, env *cliEnv, cfg config.Config, create bool) (*embed.Engine, *index.DB, *index.Collection, error) {
	eng, err := newEngine(ctx, cfg, env)
	if err != nil {
		return nil, nil, nil, err
	}
	db, err := openDB(cfg, env)
	if err != nil {
		eng.Close()
		return nil, nil, nil, err
	}
	col, err := collectionFor(db, cfg, f.collection, eng.Info(), f.profile, create)
	if err == nil && projectionOf(col) != "" {
		// the server binds a tuned collection's projection to its engine (lifecycle.WithFingerprint);
		// these commands embed with the bare engine
		err = fmt.Errorf("collection %q holds vectors of the learned projection %s (lookalike tune): index and search it through a server (--server URL): %w",
			col.Name(), projectionOf(col), index.ErrFingerprintMismatch)
	}
	if err != nil {
		db.Close()
		eng.Close()
		return nil, nil, nil, err
	}
	return eng, db, col, nil
}

func indexOptions(cfg config.Config, env *cliEnv) *index.Options {
	return &index.Options{
		M: cfg.Index.M, EfConstruction: cfg.Index.EfConstruction, EfSearch: cfg.Index.EfSearch,
		ExactThreshold: cfg.Index.ExactThreshold, SnapshotInterval: cfg.Index.SnapshotInterval,
		Compression: cfg.Index.Compression, BuildWorkers: cfg.Index.BuildWorkers,
		Logger: env.logger(cfg),
	}
}

func openDB(cfg config.Config, env *cliEnv) (*index.DB, error) {
	db, err := index.Open(cfg.Data.Dir, indexOptions(cfg, env))
	if err != nil {
		return nil, dataDirError(cfg, err)
	}
	return db, nil
}

// collectionFor returns the named collection, creating it when create is set for the engine's
// fingerprint under profile ("" = the engine's default). An existing collection must hold vectors
// the engine makes (under any of its profiles, or under profile when one is named); otherwise it
// is an error (index.ErrFingerprintMismatch). An empty info checks nothing.
func collectionFor(db *index.DB, cfg config.Config, name string, info embed.Info, profile string, create bool) (*index.Collection, error) {
	if t := db.Resolve(name); t != name {
		// A rebuilt collection: its alias names the generation to use, whatever its model.
		return db.Collection(t)
	}
	var want spec.Profile
	var fp string
	if info.Fingerprint != "" {
		var err error
		if want, fp, err = info.ProfileFingerprint(profile); err != nil {
			return nil, fmt.Errorf("%w: --profile: %v", errUsage, err)
		}
	}
	col, err := db.Collection(name)
	if errors.Is(err, index.ErrNotFound) && create {
		return db.CreateCollection(name, index.CollectionConfig{
			Fingerprint: fp, Dims: info.Dims,
			M: cfg.Index.M, EfConstruction: cfg.Index.EfConstruction, EfSearch: cfg.Index.EfSearch,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("collection %q: %w", name, err)
	}
	if info.Fingerprint == "" {
		return col, nil
	}
	got, ok := info.ProfileFor(col.Fingerprint())
	if !ok {
		return nil, fmt.Errorf("collection %q was built with model fingerprint %s, the configured model is %s (profile %s): %w",
			name, col.Fingerprint(), info.Fingerprint, info.Profile, index.ErrFingerprintMismatch)
	}
	if profile != "" && want.Name != got {
		return nil, fmt.Errorf("collection %q holds vectors of profile %s, not %s (a collection keeps the profile it was created with): %w",
			name, got, want.Name, index.ErrFingerprintMismatch)
	}
	return col, nil
}

// profileOf is the descriptor profile of col's vectors under eng (collectionFor checked that eng
// makes them).
func profileOf(eng *embed.Engine, col *index.Collection) string {
	p, _ := eng.Info().ProfileFor(col.Fingerprint())
	return p
}

func runIndex(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "index")
	cf := addCatalogFlags(fs, true)
	force := fs.Bool("force", false, "re-embed items whose content is unchanged")
	allowFailures := fs.Bool("allow-failures", false, "exit 0 even when some items failed (they are still listed)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	fs.StringVar(&cf.profile, "profile", "", "descriptor profile of a new collection: "+strings.Join(spec.ProfileNames(), ", ")+
		" or rmac:S1,S2,... (default: model.profile; an existing collection keeps its own)")
	paths, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := requireArgs(paths, 1, "PATH... (files, folders, or a .csv/.jsonl manifest)"); err != nil {
		return err
	}
	if cf.server != "" {
		return remoteIndex(ctx, env, cf, paths, *force, *allowFailures, *quiet)
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	cf.apply(&cfg)
	sources, err := ingest.Collect(paths)
	if err != nil {
		return err
	}
	eng, db, col, err := cf.openWithEngine(ctx, env, cfg, true)
	if err != nil {
		return err
	}
	defer eng.Close()
	defer db.Close()
	var bar *progressbar.ProgressBar
	if !*quiet && !cf.asJSON {
		bar = newProgress(env.stderr, len(sources), "indexing")
	}
	rep, err := ingest.Run(ctx, eng, col, sources, ingest.Options{
		Workers: cfg.Embed.Workers, Logger: env.logger(cfg),
		Policy: ingest.Policy{ThumbnailSize: cfg.Limits.ThumbnailSize, ThumbnailQuality: cfg.Limits.ThumbnailQuality,
			SourceSize: cfg.Limits.SourceSize, SourceQuality: cfg.Limits.SourceQuality,
			MaxPixels: cfg.Limits.MaxPixels, Force: *force, Profile: profileOf(eng, col)},
		Progress: func(p ingest.Progress) {
			if bar != nil {
				_ = bar.Set(p.Done)
			}
		},
	})
	if bar != nil {
		_ = bar.Finish()
	}
	return reportIndex(env, cf, rep, err, len(sources), *allowFailures)
}

// reportIndex prints what a load did (local or through --server) and turns it into the exit
// status: an interrupted load or any failed item is an error unless failures are allowed.
func reportIndex(env *cliEnv, cf *catalogFlags, rep ingest.Report, err error, total int, allowFailures bool) error {
	sort.Slice(rep.Failures, func(i, j int) bool { return rep.Failures[i].ID < rep.Failures[j].ID })
	if cf.asJSON {
		type failure struct{ ID, Path, Error string }
		out := struct {
			Collection string    `json:"collection"`
			Added      int       `json:"added"`
			Skipped    int       `json:"skipped"`
			Failed     int       `json:"failed"`
			Failures   []failure `json:"failures"`
			ElapsedS   float64   `json:"elapsed_s"`
		}{cf.collection, rep.Added, rep.Skipped, rep.Failed, []failure{}, rep.Elapsed.Seconds()}
		for _, f := range rep.Failures {
			out.Failures = append(out.Failures, failure{f.ID, f.Path, f.Err.Error()})
		}
		if jerr := writeJSON(env.stdout, out); jerr != nil {
			return jerr
		}
	} else {
		fmt.Fprintf(env.stdout, "collection %s: %d added, %d unchanged, %d failed in %.1f s (%.1f images/s)\n",
			cf.collection, rep.Added, rep.Skipped, rep.Failed, rep.Elapsed.Seconds(), float64(rep.Added)/max(rep.Elapsed.Seconds(), 1e-9))
		for _, f := range rep.Failures {
			fmt.Fprintf(env.stdout, "  failed %s (%s): %v\n", f.ID, f.Path, f.Err)
		}
	}
	if err != nil {
		return fmt.Errorf("index interrupted (re-run to resume): %w", err)
	}
	if rep.Failed > 0 && !allowFailures {
		// The failures are listed above; a script must not mistake a partial load for a full one.
		return fmt.Errorf("%d of %d items failed (--allow-failures exits 0 anyway)", rep.Failed, total)
	}
	return nil
}

// searchOutput is the stable JSON shape of search and similar (documented in the README).
type searchOutput struct {
	Collection string             `json:"collection"`
	Query      string             `json:"query"`
	Model      string             `json:"model,omitempty"`
	Rerank     string             `json:"rerank"`
	Results    []resultOutput     `json:"results"`
	TimingsMS  map[string]float64 `json:"timings_ms"`
}

type resultOutput struct {
	ID       string          `json:"id"`
	Score    float32         `json:"score"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

func searchFlags(fs *flag.FlagSet) (k, ef *int, filter *string, exact *bool, rr *string) {
	k = fs.Int("k", 10, "number of results")
	ef = fs.Int("ef", 0, "HNSW beam width (0 = collection default)")
	filter = fs.String("filter", "", `metadata filter, e.g. 'category = "shoes" AND price < 100'`)
	exact = fs.Bool("exact", false, "exact (brute-force) search")
	rr = fs.String("rerank", "", "re-ranking: none, qe, kr or qe+kr (default: index.rerank_search, or index.rerank_similar for similar)")
	return
}

func buildSearchOptions(k, ef int, filter string, exact bool, rr string) (index.SearchOptions, error) {
	o := index.SearchOptions{K: k, Ef: ef, Exact: exact}
	if k < 1 {
		return o, fmt.Errorf("%w: -k must be >= 1", errUsage)
	}
	m, err := rerank.ParseMode(rr)
	if err != nil {
		return o, fmt.Errorf("%w: --rerank: %v", errUsage, err)
	}
	o.Rerank = m
	if filter != "" {
		f, err := index.ParseFilter(filter)
		if err != nil {
			return o, fmt.Errorf("%w: --filter: %v", errUsage, err)
		}
		o.Filter = f
	}
	return o, nil
}

// queryCommand parses the flags shared by search and similar and their one argument (what).
func queryCommand(env *cliEnv, name, what string, args []string) (*catalogFlags, index.SearchOptions, string, error) {
	fs := newFlags(env, name)
	cf := addCatalogFlags(fs, true)
	k, ef, filter, exact, rr := searchFlags(fs)
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, index.SearchOptions{}, "", err
	}
	if len(rest) != 1 {
		return nil, index.SearchOptions{}, "", fmt.Errorf("%w: expected one %s", errUsage, what)
	}
	opts, err := buildSearchOptions(*k, *ef, *filter, *exact, *rr)
	cf.filter = *filter
	return cf, opts, rest[0], err
}

// defaultRerank applies the configured default when the command named no re-ranking.
func defaultRerank(o *index.SearchOptions, def string) {
	if o.Rerank == rerank.ModeDefault {
		o.Rerank, _ = rerank.ParseMode(def) // validated with the configuration
	}
}

func runSearch(ctx context.Context, env *cliEnv, args []string) error {
	cf, opts, path, err := queryCommand(env, "search", "IMAGE", args)
	if err != nil {
		return err
	}
	if cf.server != "" {
		return remoteSearch(ctx, env, cf, opts, path)
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	cf.apply(&cfg)
	defaultRerank(&opts, cfg.Index.RerankSearch)
	start := time.Now()
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	eng, db, col, err := cf.openWithEngine(ctx, env, cfg, false)
	if err != nil {
		return err
	}
	defer eng.Close()
	defer db.Close()
	queryStart := time.Now()
	embs, err := eng.Embed(ctx, []embed.Image{{Data: data, Profile: profileOf(eng, col)}})
	if err != nil {
		return err
	}
	if embs[0].Err != nil {
		return fmt.Errorf("%s: %w", path, embs[0].Err)
	}
	searchStart := time.Now()
	res, err := col.Search(ctx, embs[0].Vector, opts)
	if err != nil {
		return err
	}
	t := embs[0].Timings
	timings := map[string]float64{
		"decode": ms(t.Decode), "preprocess": ms(t.Preprocess), "inference": ms(t.Inference),
		"search": ms(time.Since(searchStart)), "total": ms(time.Since(queryStart)), "startup": ms(queryStart.Sub(start)),
	}
	return printResults(env, cf, path, eng.Info().ModelID, opts.Rerank, res, timings)
}

func runSimilar(ctx context.Context, env *cliEnv, args []string) error {
	cf, opts, id, err := queryCommand(env, "similar", "ID", args)
	if err != nil {
		return err
	}
	if cf.server != "" {
		return remoteSimilar(ctx, env, cf, opts, id)
	}
	cfg, db, col, err := cf.open(env)
	if err != nil {
		return err
	}
	defer db.Close()
	defaultRerank(&opts, cfg.Index.RerankSimilar)
	start := time.Now()
	res, err := col.Similar(ctx, id, opts)
	if err != nil {
		return fmt.Errorf("similar to %q: %w", id, err)
	}
	timings := map[string]float64{"search": ms(time.Since(start)), "total": ms(time.Since(start))}
	return printResults(env, cf, id, "", opts.Rerank, res, timings)
}

func printResults(env *cliEnv, cf *catalogFlags, query, model string, mode rerank.Mode, res []index.Result, timings map[string]float64) error {
	if cf.asJSON {
		out := searchOutput{Collection: cf.collection, Query: query, Model: model, Rerank: mode.String(), Results: []resultOutput{}, TimingsMS: timings}
		for _, r := range res {
			out.Results = append(out.Results, resultOutput{ID: r.ID, Score: r.Score, Metadata: r.Metadata})
		}
		return writeJSON(env.stdout, out)
	}
	for i, r := range res {
		fmt.Fprintf(env.stdout, "%3d  %.4f  %s  %s\n", i+1, r.Score, r.ID, string(r.Metadata))
	}
	fmt.Fprintf(env.stdout, "(%s, re-ranking %s; search %.2f ms, total %.2f ms)\n", plural(len(res), "result"), mode, timings["search"], timings["total"])
	return nil
}

func runDelete(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "delete")
	cf := addCatalogFlags(fs, false)
	ids, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := requireArgs(ids, 1, "ID..."); err != nil {
		return err
	}
	if cf.server != "" {
		return remoteDelete(ctx, env, cf, ids)
	}
	_, db, col, err := cf.open(env)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := col.Delete(ctx, ids...)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "deleted %d of %d\n", n, len(ids))
	return nil
}

func runStats(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "stats")
	cf := addCatalogFlags(fs, true)
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if cf.server != "" {
		return remoteStats(ctx, env, cf)
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	cf.apply(&cfg)
	db, err := openDB(cfg, env)
	if err != nil {
		return err
	}
	defer db.Close()
	infos := db.Collections()
	if cf.asJSON {
		return writeJSON(env.stdout, map[string]any{"data_dir": cfg.Data.Dir, "collections": infos})
	}
	fmt.Fprintf(env.stdout, "data directory %s\n", cfg.Data.Dir)
	rows := make([]client.Collection, len(infos))
	for i, c := range infos {
		rows[i] = client.Collection{Name: c.Name, Count: c.Count, Dims: c.Dims, Levels: c.Levels, DiskBytes: c.DiskBytes, Fingerprint: c.Fingerprint}
	}
	printCollections(env, rows)
	return nil
}

// printCollections is the table of stats (from a data directory or through --server).
func printCollections(env *cliEnv, cols []client.Collection) {
	fmt.Fprintf(env.stdout, "%-20s %9s %5s %7s %10s  %s\n", "collection", "items", "dims", "levels", "disk", "fingerprint")
	for _, c := range cols {
		fmt.Fprintf(env.stdout, "%-20s %9d %5d %7d %9.1fM  %s\n", c.Name, c.Count, c.Dims, c.Levels, float64(c.DiskBytes)/(1<<20), c.Fingerprint)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
