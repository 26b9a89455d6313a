package main

// The catalog commands with --server: the same work and the same output as on a data directory,
// through the REST API (remote.go). Output goes through the printers the local commands use.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/lookalike/lookalike/embed"
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
	r, err := cf.connect(env)
	if err != nil {
		return err
	}
	sources, err := ingest.Collect(paths)
	if err != nil {
		return err
	}
	if err := r.ensureCollection(ctx); err != nil {
		return err
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
	return reportIndex(env, cf, rep, err, len(sources), allowFailures)
}

// ensureCollection creates the collection when the server does not have it, as a local index does.
func (r *remote) ensureCollection(ctx context.Context) error {
	err := r.call(ctx, http.MethodGet, r.colPath(), nil, nil, nil)
	if !isAPIError(err, http.StatusNotFound, "") {
		return err
	}
	err = r.call(ctx, http.MethodPost, "/v1/collections", nil, map[string]string{"name": r.collection}, nil)
	if isAPIError(err, http.StatusConflict, "already_exists") {
		return nil // created meanwhile
	}
	return err
}

// batchLine is one item of an items:batch request and its answer.
type batchLine struct {
	ID       string          `json:"id"`
	Image    []byte          `json:"image,omitempty"` // base64 in JSON
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Outcome  string          `json:"outcome,omitempty"`
	Error    *apiError       `json:"error,omitempty"`
	Status   int             `json:"status,omitempty"`
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
	var body []byte
	for _, in := range inputs {
		line, err := json.Marshal(batchLine{ID: in.ID, Image: in.Image, Metadata: in.Metadata})
		if err != nil {
			return nil, err
		}
		body = append(append(body, line...), '\n')
	}
	var out struct {
		Results []batchLine `json:"results"`
	}
	err := r.call(ctx, http.MethodPost, r.colPath("/items:batch"), nil, ndjson(body), &out)
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
	if err != nil {
		return failedResults(inputs, err), err
	}
	if len(out.Results) != len(inputs) {
		err := fmt.Errorf("the server answered %d results for %d items", len(out.Results), len(inputs))
		return failedResults(inputs, err), err
	}
	results := make([]ingest.Result, len(inputs))
	for i, l := range out.Results {
		results[i] = ingest.Result{ID: l.ID, Outcome: ingest.Outcome(l.Outcome)}
		if l.Error != nil {
			l.Error.Status = l.Status
			results[i].Err = l.Error
		}
	}
	return results, nil
}

func failedResults(inputs []ingest.Input, err error) []ingest.Result {
	out := make([]ingest.Result, len(inputs))
	for i, in := range inputs {
		out[i] = ingest.Result{ID: in.ID, Err: err}
	}
	return out
}

// searchAnswer is the part of the API's search response the CLI prints.
type searchAnswer struct {
	Results []struct {
		ID       string          `json:"id"`
		Score    float32         `json:"score"`
		Metadata json.RawMessage `json:"metadata"`
	} `json:"results"`
	Model     string             `json:"model"`
	Rerank    rerank.Mode        `json:"rerank"`
	TimingsMS map[string]float64 `json:"timings_ms"`
}

func (a searchAnswer) print(env *cliEnv, cf *catalogFlags, query string, started time.Time) error {
	res := make([]index.Result, len(a.Results))
	for i, r := range a.Results {
		meta := r.Metadata
		if string(meta) == "{}" {
			meta = nil // as a local search prints an item without metadata
		}
		res[i] = index.Result{ID: r.ID, Score: r.Score, Metadata: meta}
	}
	if a.TimingsMS == nil {
		a.TimingsMS = map[string]float64{}
	}
	a.TimingsMS["roundtrip"] = ms(time.Since(started))
	return printResults(env, cf, query, a.Model, a.Rerank, res, a.TimingsMS)
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
	req := map[string]any{"image": data, "k": opts.K, "exact": opts.Exact}
	if opts.Ef > 0 {
		req["ef"] = opts.Ef
	}
	if opts.Rerank != rerank.ModeDefault {
		req["rerank"] = opts.Rerank.String()
	}
	if cf.filter != "" {
		req["filter"] = cf.filter
	}
	start := time.Now()
	var ans searchAnswer
	if err := r.call(ctx, http.MethodPost, r.colPath("/search"), nil, req, &ans); err != nil {
		return fmt.Errorf("search %s: %w", path, err)
	}
	return ans.print(env, cf, path, start)
}

func remoteSimilar(ctx context.Context, env *cliEnv, cf *catalogFlags, opts index.SearchOptions, id string) error {
	r, err := cf.connect(env)
	if err != nil {
		return err
	}
	// diversify=false: the command lists the nearest items, copies included, as it does locally.
	q := url.Values{"k": {strconv.Itoa(opts.K)}, "exact": {strconv.FormatBool(opts.Exact)}, "diversify": {"false"}}
	if opts.Ef > 0 {
		q.Set("ef", strconv.Itoa(opts.Ef))
	}
	if opts.Rerank != rerank.ModeDefault {
		q.Set("rerank", opts.Rerank.String())
	}
	if cf.filter != "" {
		q.Set("filter", cf.filter)
	}
	start := time.Now()
	var ans searchAnswer
	if err := r.call(ctx, http.MethodGet, r.colPath(itemPath(id), "/similar"), q, nil, &ans); err != nil {
		return fmt.Errorf("similar to %q: %w", id, err)
	}
	return ans.print(env, cf, id, start)
}

func remoteDelete(ctx context.Context, env *cliEnv, cf *catalogFlags, ids []string) error {
	r, err := cf.connect(env)
	if err != nil {
		return err
	}
	n := 0
	for _, id := range ids {
		err := r.call(ctx, http.MethodDelete, r.colPath(itemPath(id)), nil, nil, nil)
		switch {
		case isAPIError(err, http.StatusNotFound, "item_not_found"):
		case err != nil:
			return fmt.Errorf("delete %q (%d of %d deleted before): %w", id, n, len(ids), err)
		default:
			n++
		}
	}
	fmt.Fprintf(env.stdout, "deleted %d of %d\n", n, len(ids))
	return nil
}

// collectionAnswer is a collection as GET /v1/collections lists it.
type collectionAnswer struct {
	Name        string `json:"name"`
	Count       int    `json:"count"`
	Dims        int    `json:"dims"`
	Fingerprint string `json:"fingerprint"`
	Model       string `json:"model"`
	Levels      int    `json:"levels"`
	DiskBytes   int64  `json:"disk_bytes"`
}

func remoteStats(ctx context.Context, env *cliEnv, cf *catalogFlags) error {
	r, err := cf.connect(env)
	if err != nil {
		return err
	}
	var ans struct {
		Collections []collectionAnswer `json:"collections"`
	}
	if err := r.call(ctx, http.MethodGet, "/v1/collections", nil, nil, &ans); err != nil {
		return err
	}
	if cf.asJSON {
		return writeJSON(env.stdout, map[string]any{"server": r.base, "collections": ans.Collections})
	}
	fmt.Fprintf(env.stdout, "server %s\n", r.base)
	printCollections(env, ans.Collections)
	return nil
}

func remoteDupes(ctx context.Context, env *cliEnv, cf *catalogFlags, tier string) error {
	r, err := cf.connect(env)
	if err != nil {
		return err
	}
	clusters := []intel.DupCluster{}
	for cursor := ""; ; {
		var page intel.DupPage
		q := url.Values{"tier": {tier}, "limit": {"1000"}, "cursor": {cursor}}
		if err := r.call(ctx, http.MethodGet, r.colPath("/duplicates"), q, nil, &page); err != nil {
			return err
		}
		clusters = append(clusters, page.Clusters...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	return printDupes(env, tier, clusters, cf.asJSON)
}

// remoteTagAll tags the collection a page at a time through tags:apply. o.K <= 0 and
// o.MinConfidence < 0 leave the server's defaults.
func remoteTagAll(ctx context.Context, env *cliEnv, cf *catalogFlags, o intel.TagOptions) error {
	r, err := cf.connect(env)
	if err != nil {
		return err
	}
	req := map[string]any{"limit": 500, "overwrite": o.Overwrite, "dry_run": o.DryRun}
	if o.K > 0 {
		req["k"] = o.K
	}
	threshold := "the server's minimum confidence"
	if o.MinConfidence >= 0 {
		req["min_confidence"] = o.MinConfidence
		threshold = fmt.Sprintf("%.2f", o.MinConfidence)
	}
	total := intel.TagReport{Written: map[string]int{}, Changes: []intel.TagChange{}, DryRun: o.DryRun}
	for cursor := ""; ; {
		req["cursor"] = cursor
		var rep intel.TagReport
		if err := r.call(ctx, http.MethodPost, r.colPath("/tags:apply"), nil, req, &rep); err != nil {
			return err
		}
		total.Add(rep)
		if cursor = rep.NextCursor; cursor == "" {
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
	req := map[string]any{}
	if k > 0 {
		req["k"] = k
	}
	what := id
	if id != "" {
		req["id"] = id
	} else {
		what = photos[0]
		data, err := os.ReadFile(what)
		if err != nil {
			return err
		}
		req["image"] = data
	}
	var ans struct {
		Suggestions map[string][]intel.TagSuggestion `json:"suggestions"`
		Labels      []embed.Label                    `json:"labels"`
	}
	if err := r.call(ctx, http.MethodPost, r.colPath("/tags:suggest"), nil, req, &ans); err != nil {
		return fmt.Errorf("suggest tags for %s: %w", what, err)
	}
	if len(ans.Labels) == 0 {
		ans.Labels = nil // an item's labels may be empty: print none, as locally
	}
	return printSuggestions(env, ans.Suggestions, ans.Labels, cf.asJSON)
}
