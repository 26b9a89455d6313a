package main

// The catalog commands with --server: the same work and the same output as on a data directory,
// through the REST API with the Go client (remote.go). Output goes through the printers the local
// commands use.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/lookalike/lookalike/client"
	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/intel"
	"github.com/lookalike/lookalike/internal/ingest"
	"github.com/lookalike/lookalike/rerank"
)

// Bulk loads go up in requests of at most remoteBatch photos and about remoteBatchBytes of body
// (the server's limits.max_body_bytes is 32 MiB by default; a request it still refuses as too
// large is split in halves), remoteWorkers at a time: one uploads while the server embeds another.
const (
	remoteBatch      = 16
	remoteBatchBytes = 8 << 20
	remoteWorkers    = 2
)

func remoteIndex(ctx context.Context, env *cliEnv, cf *catalogFlags, paths []string, force, allowFailures, quiet bool) error {
	if force {
		return fmt.Errorf("%w: --force works on a data directory only (the server skips unchanged items itself)", errUsage)
	}
	if _, err := spec.ParseProfile(cf.profile); err != nil {
		return fmt.Errorf("%w: --profile: %v", errUsage, err)
	}
	r, err := cf.connect(env)
	if err != nil {
		return err
	}
	sources, err := ingest.Collect(paths)
	if err != nil {
		return err
	}
	if err := r.ensureCollection(ctx, cf.profile); err != nil {
		return r.explain(err)
	}
	o := ingest.Options{Workers: remoteWorkers, BatchSize: remoteBatch}
	var finish func() error
	if !quiet && !cf.asJSON {
		bar := newProgress(env.stderr, len(sources), "indexing")
		o.Progress, finish = func(p ingest.Progress) { _ = bar.Set(p.Done) }, bar.Finish
	}
	rep, err := ingest.RunWith(ctx, sources, o, r.loadBatch)
	if finish != nil {
		_ = finish()
	}
	if err != nil {
		err = r.explain(err)
	}
	return reportIndex(env, cf, rep, err, len(sources), allowFailures)
}

// ensureCollection creates the collection when the server does not have it, under profile ("":
// the server's default), as a local index does; an existing one must hold that profile.
func (r *remote) ensureCollection(ctx context.Context, profile string) error {
	col, err := r.c.Collection(ctx, r.collection)
	if err == nil && profile != "" && !sameProfile(col.Profile, profile) {
		return fmt.Errorf("collection %q holds vectors of profile %s, not %s (a collection keeps the profile it was created with)",
			r.collection, col.Profile, profile)
	}
	if !isAPIError(err, http.StatusNotFound, "") {
		return err
	}
	_, err = r.c.CreateCollection(ctx, client.CollectionSpec{Name: r.collection, Profile: profile})
	if isAPIError(err, http.StatusConflict, "already_exists") {
		return nil // created meanwhile
	}
	return err
}

// loadBatch is the ingest.Loader of --server: the batch's photos go up as NDJSON lines, in
// requests that stay under remoteBatchBytes.
func (r *remote) loadBatch(ctx context.Context, batch []ingest.Source, fail func(ingest.Source, error)) (ingest.Report, error) {
	inputs, srcs := ingest.ReadSources(batch, fail)
	var tally ingest.Report
	for start := 0; start < len(inputs); {
		end, size := start, 0
		for end < len(inputs) && (end == start || size+len(inputs[end].Image)*4/3 <= remoteBatchBytes) {
			size += len(inputs[end].Image) * 4 / 3
			end++
		}
		results, err := r.postBatch(ctx, inputs[start:end])
		t := ingest.Tally(srcs[start:end], results, err, fail)
		tally.Added, tally.Skipped, tally.Merged = tally.Added+t.Added, tally.Skipped+t.Skipped, tally.Merged+t.Merged
		if err != nil {
			return tally, err
		}
		start = end
	}
	return tally, nil
}

// postBatch stores inputs with one items:batch request; a request the server finds too large is
// split in halves, down to a single photo, which then fails alone. err stops the load (the server
// refused the request as a whole); the results of items not stored because of it carry err.
func (r *remote) postBatch(ctx context.Context, inputs []ingest.Input) ([]ingest.Result, error) {
	items := make([]client.NewItem, len(inputs))
	for i, in := range inputs {
		items[i] = client.NewItem{ID: in.ID, Image: in.Image, Metadata: in.Metadata}
	}
	out, err := r.c.AddItems(ctx, r.collection, items, "")
	if isAPIError(err, http.StatusRequestEntityTooLarge, "") {
		if len(inputs) == 1 {
			return []ingest.Result{{ID: inputs[0].ID, Err: err}}, nil
		}
		half := len(inputs) / 2
		a, err := r.postBatch(ctx, inputs[:half])
		if err != nil {
			return append(a, failedResults(inputs[half:], err)...), err
		}
		b, err := r.postBatch(ctx, inputs[half:])
		return append(a, b...), err
	}
	if err == nil && len(out.Results) != len(inputs) {
		err = fmt.Errorf("the server answered %d results for %d items", len(out.Results), len(inputs))
	}
	if err != nil {
		return failedResults(inputs, err), err
	}
	results := make([]ingest.Result, len(inputs))
	for i, l := range out.Results {
		results[i] = ingest.Result{ID: l.ID, Outcome: ingest.Outcome(l.Outcome)}
		if l.Error != nil {
			results[i].Err = l.Error
		}
	}
	return results, nil
}

// sameProfile compares profile names as spec reads them (rmac:1,2 and RMAC:1, 2 are one profile).
func sameProfile(a, b string) bool {
	pa, errA := spec.ParseProfile(a)
	pb, errB := spec.ParseProfile(b)
	return errA == nil && errB == nil && pa.Name == pb.Name
}

func failedResults(inputs []ingest.Input, err error) []ingest.Result {
	out := make([]ingest.Result, len(inputs))
	for i, in := range inputs {
		out[i] = ingest.Result{ID: in.ID, Err: err}
	}
	return out
}

// queryParams are the options of search and similar as the API's parameters.
func queryParams(cf *catalogFlags, opts index.SearchOptions) client.Params {
	p := client.Params{K: opts.K, Ef: opts.Ef, Exact: opts.Exact}
	if opts.Rerank != rerank.ModeDefault {
		p.Rerank = opts.Rerank.String()
	}
	if cf.filter != "" {
		p.Filter = cf.filter
	}
	return p
}

// printAnswer prints a search or similar answered by the server, as a local one.
func printAnswer(env *cliEnv, cf *catalogFlags, query string, a *client.SearchResponse, started time.Time) error {
	res := make([]index.Result, len(a.Results))
	for i, r := range a.Results {
		meta := r.Metadata
		if string(meta) == "{}" {
			meta = nil // as a local search prints an item without metadata
		}
		res[i] = index.Result{ID: r.ID, Score: r.Score, Metadata: meta}
	}
	mode, _ := rerank.ParseMode(a.Rerank) // an unknown mode prints as the default
	timings := map[string]float64{}
	for k, v := range a.TimingsMS {
		timings[k] = v
	}
	timings["roundtrip"] = ms(time.Since(started))
	return printResults(env, cf, query, a.Model, mode, res, timings)
}

func remoteSearch(ctx context.Context, env *cliEnv, cf *catalogFlags, opts index.SearchOptions, path string) error {
	r, err := cf.connect(env)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	start := time.Now()
	ans, err := r.c.Search(ctx, r.collection, client.Query{Image: data, Params: queryParams(cf, opts)})
	if err != nil {
		return fmt.Errorf("search %s: %w", path, r.explain(err))
	}
	return printAnswer(env, cf, path, ans, start)
}

func remoteSimilar(ctx context.Context, env *cliEnv, cf *catalogFlags, opts index.SearchOptions, id string) error {
	r, err := cf.connect(env)
	if err != nil {
		return err
	}
	p := queryParams(cf, opts)
	p.Diversify = new(bool) // false: the nearest items, copies included, as the command lists them locally
	start := time.Now()
	ans, err := r.c.Similar(ctx, r.collection, id, p)
	if err != nil {
		return fmt.Errorf("similar to %q: %w", id, r.explain(err))
	}
	return printAnswer(env, cf, id, ans, start)
}

func remoteDelete(ctx context.Context, env *cliEnv, cf *catalogFlags, ids []string) error {
	r, err := cf.connect(env)
	if err != nil {
		return err
	}
	n := 0
	for _, id := range ids {
		err := r.c.DeleteItem(ctx, r.collection, id)
		switch {
		case isAPIError(err, http.StatusNotFound, "item_not_found"):
		case err != nil:
			return fmt.Errorf("delete %q (%d of %d deleted before): %w", id, n, len(ids), r.explain(err))
		default:
			n++
		}
	}
	fmt.Fprintf(env.stdout, "deleted %d of %d\n", n, len(ids))
	return nil
}

func remoteStats(ctx context.Context, env *cliEnv, cf *catalogFlags) error {
	r, err := cf.connect(env)
	if err != nil {
		return err
	}
	cols, err := r.c.Collections(ctx)
	if err != nil {
		return r.explain(err)
	}
	if cf.asJSON {
		return writeJSON(env.stdout, map[string]any{"server": r.base, "collections": cols})
	}
	fmt.Fprintf(env.stdout, "server %s\n", r.base)
	printCollections(env, cols)
	return nil
}

func remoteDupes(ctx context.Context, env *cliEnv, cf *catalogFlags, tier string) error {
	r, err := cf.connect(env)
	if err != nil {
		return err
	}
	var clusters []client.DuplicateCluster
	for cursor := ""; ; {
		page, err := r.c.Duplicates(ctx, r.collection, tier, cursor, 1000)
		if err != nil {
			return r.explain(err)
		}
		clusters = append(clusters, page.Clusters...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	out := []intel.DupCluster{}
	if err := sameJSON(clusters, &out); err != nil {
		return err
	}
	return printDupes(env, tier, out, cf.asJSON)
}

// remoteTagAll tags the collection a page at a time through tags:apply. o.K <= 0 and
// o.MinConfidence < 0 leave the server's defaults.
func remoteTagAll(ctx context.Context, env *cliEnv, cf *catalogFlags, o intel.TagOptions) error {
	r, err := cf.connect(env)
	if err != nil {
		return err
	}
	req := client.TagApply{Limit: 500, K: max(o.K, 0), Overwrite: o.Overwrite, DryRun: o.DryRun}
	threshold := "the server's minimum confidence"
	if o.MinConfidence >= 0 {
		req.MinConfidence = &o.MinConfidence
		threshold = fmt.Sprintf("%.2f", o.MinConfidence)
	}
	total := intel.TagReport{Written: map[string]int{}, Changes: []intel.TagChange{}, DryRun: o.DryRun}
	for {
		rep, err := r.c.ApplyTags(ctx, r.collection, req)
		if err != nil {
			return r.explain(err)
		}
		var page intel.TagReport
		if err := sameJSON(rep, &page); err != nil {
			return err
		}
		total.Add(page)
		if req.Cursor = rep.NextCursor; req.Cursor == "" {
			break
		}
	}
	return printTagReport(env, total, cf.asJSON, threshold)
}

// remoteSuggest asks tags:suggest about a photo (sent along) or a stored item.
func remoteSuggest(ctx context.Context, env *cliEnv, cf *catalogFlags, id string, photos []string, k int) error {
	r, err := cf.connect(env)
	if err != nil {
		return err
	}
	q := client.TagQuery{ID: id, K: max(k, 0)}
	what := id
	if id == "" {
		what = photos[0]
		if q.Image, err = os.ReadFile(what); err != nil {
			return err
		}
	}
	ans, err := r.c.SuggestTags(ctx, r.collection, q)
	if err != nil {
		return fmt.Errorf("suggest tags for %s: %w", what, r.explain(err))
	}
	var sug map[string][]intel.TagSuggestion
	var labels []embed.Label
	if err := sameJSON(ans.Suggestions, &sug); err != nil {
		return err
	}
	if len(ans.Labels) > 0 { // an item's labels may be empty: print none, as locally
		if err := sameJSON(ans.Labels, &labels); err != nil {
			return err
		}
	}
	return printSuggestions(env, sug, labels, cf.asJSON)
}

// sameJSON copies src into dst, a type of the same JSON shape (the client's types mirror the
// server's packages, which the client does not import).
func sameJSON(src, dst any) error {
	b, err := json.Marshal(src)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}
