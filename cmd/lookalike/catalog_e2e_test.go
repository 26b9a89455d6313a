package main

// The read-modify-write part of the kill -9 test: duplicate merges (on_duplicate=merge) and bulk
// tagging (tags:apply) that add metadata fields to existing items while the server is killed.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"
)

// catalogPhotos is how many photos the catalog takes, after the ones the rounds use: four UKBench
// photos in four crops each, so every crop has three close siblings to vote its tags.
const catalogPhotos = 16

// catItem is one catalog item: what it was created with, and the fields merges and tags:apply
// added to it since.
type catItem struct {
	id    string
	photo int
	base  map[string]any
	// colored items carry a curated color, which tags:apply leaves alone. The others lack one, and
	// tags:apply fills it in while merges add fields to the same items: both go through
	// Collection.Update, so neither may undo the other.
	colored bool
	merged  map[string]string // acknowledged merge fields: their exact JSON
	maybe   map[string]string // merge fields whose answer a kill cut off
	tagged  bool              // an acknowledged tags:apply wrote its color
}

// catalog drives the merges and tags of the kill -9 test and checks what they acknowledged.
type catalog struct {
	items  []*catItem
	byID   map[string]*catItem
	photos [][]byte
	first  int // index of the catalog's first photo

	mu                 sync.Mutex
	merges, tagWrites  int
	cutMerges, cutTags int
}

func newCatalog(photos [][]byte, first int) *catalog {
	c := &catalog{byID: map[string]*catItem{}, photos: photos, first: first}
	for i := 0; i < catalogPhotos; i++ {
		it := &catItem{id: fmt.Sprintf("cat/item-%02d", i), photo: first + i, colored: i%4 != 3,
			merged: map[string]string{}, maybe: map[string]string{}}
		it.base = map[string]any{"cat": i, "name": fmt.Sprintf("catalog «%d»", i)}
		if it.colored {
			it.base["color"] = []string{"red", "green", "blue", "amber"}[i/4]
		}
		c.items = append(c.items, it)
		c.byID[it.id] = it
	}
	return c
}

// create stores the catalog; every item must be acknowledged.
func (c *catalog) create(t *testing.T, base string) {
	t.Helper()
	var batch []e2eItem
	for _, it := range c.items {
		batch = append(batch, e2eItem{id: it.id, photo: it.photo, meta: it.base})
	}
	if ids, res := postBatch(t.Context(), base, batch, c.photos); len(ids) != len(batch) {
		t.Fatalf("catalog: %d of %d items stored: %d %v %s", len(ids), len(batch), res.status, res.err, res.body)
	}
}

// check asserts, after a restart, that every catalog item holds its creation metadata and every
// acknowledged merge field (byte for byte) and tag, and nothing but what a cut-off request may
// have added. Cut-off merges found durable count as acknowledged from now on.
func (c *catalog) check(t *testing.T, base string) {
	t.Helper()
	// The catalog's ids sort before the rounds' (cat/ < r00/): its items are the first page.
	r := httpDo(t.Context(), "GET", fmt.Sprintf("%s/v1/collections/default/items?limit=%d", base, len(c.items)), "", nil)
	var page struct {
		Items []struct {
			ID       string                     `json:"id"`
			Metadata map[string]json.RawMessage `json:"metadata"`
		} `json:"items"`
	}
	if r.err != nil || r.status != http.StatusOK || json.Unmarshal(r.body, &page) != nil || len(page.Items) != len(c.items) {
		t.Fatalf("catalog: GET items %d %v %s", r.status, r.err, r.body)
	}
	for i, it := range c.items {
		got := page.Items[i]
		if got.ID != it.id {
			t.Fatalf("catalog item %d is %s, want %s", i, got.ID, it.id)
		}
		for k, want := range jsonRoundTrip(it.base) {
			var v any
			if json.Unmarshal(got.Metadata[k], &v) != nil || fmt.Sprint(v) != fmt.Sprint(want) {
				t.Errorf("catalog item %s lost or changed %s (want %v): %s", it.id, k, want, got.Metadata)
			}
		}
		for k, want := range it.merged {
			if string(got.Metadata[k]) != want {
				t.Errorf("catalog item %s: acknowledged merge field %s=%s is %q", it.id, k, want, got.Metadata[k])
			}
		}
		for k, want := range it.maybe {
			if string(got.Metadata[k]) == want {
				it.merged[k] = want
			}
		}
		clear(it.maybe)
		if it.tagged && (got.Metadata["color"] == nil || got.Metadata["auto_tagged"] == nil) {
			t.Errorf("catalog item %s: the acknowledged tag of its color is gone: %s", it.id, got.Metadata)
		}
		for k := range got.Metadata {
			_, inBase := it.base[k]
			_, merged := it.merged[k]
			if !inBase && !merged && (it.colored || (k != "color" && k != "auto_tagged")) {
				t.Errorf("catalog item %s holds %s, which nothing acknowledged or left uncertain wrote", it.id, k)
			}
		}
	}
}

// untag puts the uncolored items back to their creation metadata, so that this round's tags:apply
// has fields to write. Done before the round's concurrent requests: nothing races it.
func (c *catalog) untag(t *testing.T, base string) {
	t.Helper()
	for _, it := range c.items {
		if it.colored {
			continue
		}
		body, _ := json.Marshal(map[string]any{"id": it.id, "image": b64(c.photos[it.photo]), "metadata": it.base})
		r := httpDo(t.Context(), "POST", base+"/v1/collections/default/items", "application/json", body)
		if r.err != nil || (r.status != http.StatusCreated && r.status != http.StatusOK) {
			t.Fatalf("reset catalog item %s: %d %v %s", it.id, r.status, r.err, r.body)
		}
		it.tagged = false
		clear(it.merged) // the reset replaced the metadata: merges start again from the base
		clear(it.maybe)
	}
}

// run starts the round's mergers and tagger; they stop with ctx. Answers other than success or a
// connection cut by the kill go to fail.
func (c *catalog) run(ctx context.Context, wg *sync.WaitGroup, base string, round int, rng *rand.Rand, fail func(string, ...any)) {
	// Two targets a round, two mergers: merges of one item overlap. One target has a curated color,
	// the other is uncolored, so its merges race the tagger's writes to the same item.
	var colored, uncolored *catItem
	for _, i := range rng.Perm(len(c.items)) {
		switch it := c.items[i]; {
		case it.colored && colored == nil:
			colored = it
		case !it.colored && uncolored == nil:
			uncolored = it
		}
	}
	targets := []*catItem{colored, uncolored}
	var seq sync.Mutex
	n := 0
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				seq.Lock()
				n++
				it, key := targets[n%len(targets)], fmt.Sprintf("m%02d_%03d", round, n)
				seq.Unlock()
				// The value's digits must survive as sent: no float64 round trip in the merge.
				val := fmt.Sprintf("%d.50", n)
				body := fmt.Sprintf(`{"image":%q,"metadata":{%q:%s}}`, b64(c.photos[it.photo]), key, val)
				res := httpDo(ctx, "POST", base+"/v1/collections/default/items?on_duplicate=merge", "application/json", []byte(body))
				var a struct {
					Outcome    string `json:"outcome"`
					MergedInto string `json:"merged_into"`
				}
				json.Unmarshal(res.body, &a)
				c.mu.Lock()
				switch {
				case res.err != nil:
					it.maybe[key] = val
					c.cutMerges++
				case res.status == http.StatusOK && a.Outcome == "merged" && a.MergedInto == it.id:
					it.merged[key] = val
					c.merges++
				default:
					fail("merge into %s: %d %s", it.id, res.status, res.body)
				}
				c.mu.Unlock()
				pause(ctx, 50*time.Millisecond)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			body := fmt.Sprintf(`{"cursor":"","limit":%d,"fields":["color"],"min_confidence":0}`, len(c.items))
			res := httpDo(ctx, "POST", base+"/v1/collections/default/tags:apply", "application/json", []byte(body))
			var rep struct {
				Changes []struct{ ID, Field string } `json:"changes"`
			}
			c.mu.Lock()
			switch {
			case res.err != nil:
				c.cutTags++
			case res.status != http.StatusOK || json.Unmarshal(res.body, &rep) != nil:
				fail("tags:apply: %d %s", res.status, res.body)
			default:
				for _, ch := range rep.Changes {
					if it := c.byID[ch.ID]; it != nil && !it.colored && ch.Field == "color" {
						it.tagged = true
						c.tagWrites++
					} else {
						fail("tags:apply wrote %s of %s, which has a curated value or is not in the catalog", ch.Field, ch.ID)
					}
				}
			}
			c.mu.Unlock()
			pause(ctx, 100*time.Millisecond)
		}
	}()
}

func (c *catalog) summary() string {
	keys := 0
	var ids []string
	for _, it := range c.items {
		keys += len(it.merged)
		if len(it.merged) > 0 {
			ids = append(ids, it.id)
		}
	}
	sort.Strings(ids)
	return fmt.Sprintf("%d merges and %d tag writes acknowledged (%d merge fields on %d items), %d merges and %d tags:apply cut off",
		c.merges, c.tagWrites, keys, len(ids), c.cutMerges, c.cutTags)
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
