package api

// The Go client (package client) against the real server: every typed method, its errors, and its
// retries under real admission control.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/lookalike/lookalike/client"
	"github.com/lookalike/lookalike/internal/config"
)

func newClient(t *testing.T, ts *testServer, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(ts.url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantAPIError checks that err is a *client.Error with this status and code.
func wantAPIError(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code || e.Message == "" {
		t.Errorf("%s: %v, want a *client.Error %d %s", what, err, status, code)
	}
}

func TestClientItems(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	c := newClient(t, ts)

	cols, err := c.Collections(ctx)
	if err != nil || len(cols) != 1 || cols[0].Name != "default" {
		t.Fatalf("Collections = %+v, %v", cols, err)
	}
	if _, err := c.CreateCollection(ctx, client.CollectionSpec{Name: "other", M: 8}); err != nil {
		t.Fatalf("CreateCollection: %v", err)
	}
	_, err = c.CreateCollection(ctx, client.CollectionSpec{Name: "other"})
	wantAPIError(t, "create twice", err, http.StatusConflict, "already_exists")
	if err := c.DropCollection(ctx, "other"); err != nil {
		t.Fatalf("DropCollection: %v", err)
	}
	_, err = c.Collection(ctx, "other")
	wantAPIError(t, "a dropped collection", err, http.StatusNotFound, "collection_not_found")

	added, err := c.AddItem(ctx, "default", client.NewItem{ID: "sku/1", Image: photo(t, ukName(0)), Metadata: json.RawMessage(`{"ean":9007199254740993,"colour":"red"}`)}, "")
	if err != nil || added.Outcome != "created" || added.Item.ID != "sku/1" || added.Item.Version == 0 {
		t.Fatalf("AddItem = %+v, %v", added, err)
	}
	batch, err := c.AddItems(ctx, "default", []client.NewItem{
		{ID: "sku-2", Image: photo(t, ukName(4)), Metadata: json.RawMessage(`{"colour":"blue"}`)},
		{ID: "sku-3", Image: []byte("not a photo")},
		{ID: "sku-4", Image: photo(t, ukName(8)), Metadata: json.RawMessage(`{"colour":"red"}`)},
	}, "")
	if err != nil || batch.Stored != 2 || batch.Failed != 1 || batch.Results[1].Error == nil || batch.Results[1].Error.Status != http.StatusUnsupportedMediaType {
		t.Fatalf("AddItems = %+v, %v", batch, err)
	}
	it, err := c.GetItem(ctx, "default", "sku/1", true)
	if err != nil || it.Version != added.Item.Version || len(it.Vector) != ts.eng.Info().Dims || string(it.Metadata) != `{"ean":9007199254740993,"colour":"red"}` {
		t.Fatalf("GetItem = %+v, %v", it, err)
	}
	_, err = c.GetItem(ctx, "default", "nope", false)
	wantAPIError(t, "a missing item", err, http.StatusNotFound, "item_not_found")

	// PATCH with a version precondition.
	_, err = c.PatchItem(ctx, "default", "sku/1", json.RawMessage(`{"price":5}`), it.Version+100)
	wantAPIError(t, "a stale version", err, http.StatusConflict, "version_conflict")
	p, err := c.PatchItem(ctx, "default", "sku/1", json.RawMessage(`{"price":5,"colour":null}`), it.Version)
	if err != nil || p.Outcome != "updated" || p.Item.Version <= it.Version || string(p.Item.Metadata) != `{"ean":9007199254740993,"price":5}` {
		t.Fatalf("PatchItem = %+v, %v", p, err)
	}

	n, err := c.CountItems(ctx, "default", `colour = "red"`)
	if err != nil || n != 1 {
		t.Fatalf("CountItems = %d, %v", n, err)
	}
	page, err := c.ListItems(ctx, "default", client.ListOptions{Filter: map[string]any{"colour": "blue"}, WithVector: true})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != "sku-2" || len(page.Items[0].Vector) == 0 {
		t.Fatalf("ListItems = %+v, %v", page, err)
	}
	rep, err := c.UpdateWhere(ctx, "default", client.Bulk{Filter: `colour IN ("red", "blue")`}, json.RawMessage(`{"sale":true}`))
	if err != nil || rep.Updated != 2 {
		t.Fatalf("UpdateWhere = %+v, %v", rep, err)
	}
	_, err = c.UpdateWhere(ctx, "default", client.Bulk{}, json.RawMessage(`{"sale":true}`))
	wantAPIError(t, "a bulk update without a filter", err, http.StatusBadRequest, "filter_required")
	rep, err = c.DeleteWhere(ctx, "default", client.Bulk{Filter: "sale = true"})
	if err != nil || rep.Trashed != 2 || rep.RestorableUntil.Before(time.Now()) {
		t.Fatalf("DeleteWhere = %+v, %v", rep, err)
	}
	if thumb, err := c.Thumbnail(ctx, "default", "sku/1"); err != nil || len(thumb) < 100 {
		t.Fatalf("Thumbnail: %d bytes, %v", len(thumb), err)
	}
	if err := c.DeleteItem(ctx, "default", "sku/1"); err != nil {
		t.Fatalf("DeleteItem: %v", err)
	}
	if n, _ := c.CountItems(ctx, "default", nil); n != 0 {
		t.Fatalf("%d items left", n)
	}
}

func TestClientQueries(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	c := newClient(t, ts)
	ts.putPlane(t, 0, 30, 60, 90, 120)
	ts.addPhoto(t, ukName(0), `{"deg":-1}`)
	dims := ts.eng.Info().Dims
	first := func(what string, r *client.SearchResponse, err error, want string) {
		t.Helper()
		if err != nil || len(r.Results) == 0 || r.Results[0].ID != want {
			t.Errorf("%s: %+v, %v; want %s first", what, r, err, want)
		}
	}
	r, err := c.Search(ctx, "default", client.Query{Image: reencode(t, photo(t, ukName(0)), 0.5, 80), Params: client.Params{K: 1}})
	first("search by photo", r, err, "ukbench00000")
	if err == nil {
		kept, err := c.Search(ctx, "default", client.Query{PhotoID: r.PhotoID, Params: client.Params{K: 1}})
		first("search by the kept photo "+r.PhotoID, kept, err, "ukbench00000")
		if err == nil && (kept.Results[0].Weak != (kept.Results[0].Score < kept.WeakBelow) || kept.WeakBelow <= 0) {
			t.Errorf("weak %v for score %v, weak_below %v", kept.Results[0].Weak, kept.Results[0].Score, kept.WeakBelow)
		}
	}
	r, err = c.Search(ctx, "default", client.Query{Vector: axisVector(dims, cosDeg(95), sinDeg(95)), Params: client.Params{K: 2, Filter: map[string]any{"deg": map[string]any{"gte": 0}}}})
	first("search by vector with a JSON filter", r, err, "a90")
	r, err = c.Search(ctx, "default", client.Query{ID: "a0", Params: client.Params{K: 1}})
	first("search by id", r, err, "a30")
	no := false
	r, err = c.Similar(ctx, "default", "a120", client.Params{K: 1, Diversify: &no, Filter: "deg < 100"})
	first("similar", r, err, "a90")
	r, err = c.Recommend(ctx, "default", client.Recommendation{Positive: []client.Example{{ID: "a60"}}, Negative: []client.Example{{ID: "a90"}}, Params: client.Params{K: 1}})
	first("recommend", r, err, "a30")
	_, err = c.Recommend(ctx, "default", client.Recommendation{Positive: []client.Example{{ID: "nope"}}})
	wantAPIError(t, "recommend from a missing item", err, http.StatusNotFound, "item_not_found")
	_, err = c.Search(ctx, "default", client.Query{ID: "a0", Params: client.Params{K: 5000}})
	wantAPIError(t, "k beyond the limit", err, http.StatusBadRequest, "invalid_query")

	answers, err := c.SimilarBatch(ctx, "default", []string{"a0", "nope"}, client.Params{K: 1, Diversify: &no})
	if err != nil || len(answers) != 2 || answers[0].Results[0].ID != "a30" || answers[1].Err() == nil {
		t.Fatalf("SimilarBatch = %+v, %v", answers, err)
	}
	wantAPIError(t, "a batch's failed answer", answers[1].Err(), http.StatusNotFound, "item_not_found")
	answers, err = c.SearchBatch(ctx, "default", []client.Query{{ID: "a30", Params: client.Params{K: 2}}, {Vector: []float32{1}}})
	if err != nil || len(answers) != 2 || len(answers[0].Results) != 2 || answers[1].Status != http.StatusBadRequest {
		t.Fatalf("SearchBatch = %+v, %v", answers, err)
	}
	answers, err = c.RecommendBatch(ctx, "default", []client.Recommendation{
		{Positive: []client.Example{{ID: "a0"}, {ID: "a60", Weight: 1}}, Params: client.Params{K: 1}},
		{Positive: []client.Example{{Vector: axisVector(dims, cosDeg(125), sinDeg(125))}}, Params: client.Params{K: 1}},
	})
	if err != nil || len(answers) != 2 || answers[0].Results[0].ID != "a30" || answers[1].Results[0].ID != "a120" {
		t.Fatalf("RecommendBatch = %+v, %v", answers, err)
	}
}

// Under real admission control: a photo search refused with 429 while every inference slot is
// taken succeeds once the client has waited the Retry-After the server asked for.
func TestClientRetriesOverload(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) {
		c.Server.MaxInflightEmbeds, c.Server.MaxQueuedEmbeds, c.Server.RetryAfter = 1, 0, time.Second
	})
	ctx := context.Background()
	img := reencode(t, photo(t, ukName(0)), 0.5, 80)
	release, err := ts.admit.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = newClient(t, ts, client.WithRetries(0, 0)).Search(ctx, "default", client.Query{Image: img})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusTooManyRequests || e.Code != "overloaded" || e.RetryAfter != time.Second {
		t.Fatalf("without retries: %v", err)
	}
	freed := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		release()
		close(freed)
	}()
	start := time.Now()
	r, err := newClient(t, ts).Search(ctx, "default", client.Query{Image: img})
	<-freed
	if err != nil || r == nil || time.Since(start) < time.Second {
		t.Fatalf("with retries: %v after %v", err, time.Since(start))
	}
	if r.TimingsMS["inference"] <= 0 {
		t.Fatalf("the retried search was not embedded: %+v", r.TimingsMS)
	}
}

// TestClientIntel: tag suggestions (by item, by photo), bulk tagging and duplicate clusters
// through the client, as `lookalike tag` and `dupes` use them with --server.
func TestClientIntel(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	c := newClient(t, ts)
	for i := 0; i < 8; i++ {
		meta := fmt.Sprintf(`{"category":"object-%d","name":"photo %d"}`, i/4, i)
		if i == 3 {
			meta = `{"name":"photo 3"}`
		}
		ts.addPhoto(t, ukName(i), meta)
	}
	sug, err := c.SuggestTags(ctx, "default", client.TagQuery{ID: "ukbench00003"})
	if err != nil || len(sug.Suggestions["category"]) == 0 || sug.Suggestions["category"][0].Value != "object-0" {
		t.Fatalf("SuggestTags by id = %+v, %v", sug, err)
	}
	if _, ok := sug.Suggestions["name"]; ok {
		t.Errorf("free-text name suggested: %+v", sug.Suggestions["name"])
	}
	if sug, err = c.SuggestTags(ctx, "default", client.TagQuery{Image: photo(t, ukName(5)), K: 3}); err != nil || len(sug.Labels) == 0 {
		t.Fatalf("SuggestTags by photo = %+v, %v", sug, err)
	}
	_, err = c.SuggestTags(ctx, "default", client.TagQuery{ID: "nope"})
	wantAPIError(t, "suggest for a missing item", err, http.StatusNotFound, "item_not_found")
	minConf := 0.3
	rep, err := c.ApplyTags(ctx, "default", client.TagApply{DryRun: true, MinConfidence: &minConf, Limit: 5})
	if err != nil || rep.Scanned != 5 || rep.Written["category"] != 1 || rep.NextCursor == "" || !rep.DryRun {
		t.Fatalf("ApplyTags = %+v, %v", rep, err)
	}
	page, err := c.Duplicates(ctx, "default", "similar", "", 0)
	if err != nil || page.Tier != "similar" || len(page.Clusters) == 0 || len(page.Clusters[0].Items) < 2 || page.Clusters[0].Items[1].Tier == "" {
		t.Fatalf("Duplicates = %+v, %v", page, err)
	}
	_, err = c.Duplicates(ctx, "default", "bogus", "", 0)
	wantAPIError(t, "an unknown tier", err, http.StatusBadRequest, "invalid_tier")
}
