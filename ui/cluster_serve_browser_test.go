package ui_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/lookalike/lookalike/internal/testport"
)

// TestClusterModePages runs the UI against a real `lookalike serve` in cluster mode (a cluster of
// one node: its embedded NATS server, 16 shards, every read and search going through the shards'
// queue groups), seeded like the single node's: the catalog pages through every item (its second
// page by cursor), the item page shows the item and its similar items, a photo search finds the
// object (the filter controls built from the cluster's fields), and the status page shows the
// collection's count; no page meets a refused route.
func TestClusterModePages(t *testing.T) {
	chromiumPath(t)
	if os.Getenv("LOOKALIKE_UI_SERVER") == "mock" {
		t.Skip("needs the real server")
	}
	port, err := testport.Free()
	if err != nil {
		t.Fatal(err)
	}
	s, err := launchServe("LOOKALIKE_CLUSTER_ENABLED=true", "LOOKALIKE_CLUSTER_NODE_NAME=ui1",
		fmt.Sprintf("LOOKALIKE_CLUSTER_CLIENT_ADDR=127.0.0.1:%d", port))
	if s != nil {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("server log (tail):\n%s", tail(s.log.String(), 3000))
			}
			s.stop()
		})
	}
	if err != nil {
		t.Fatalf("start lookalike serve in cluster mode: %v", err)
	}
	items := 3*seedGroups + 1
	b := newBrowser(t, s.URL)

	// The catalog: 30 cards a page, the rest behind Load more (the cluster's merged cursor).
	b.open("#/catalog", "#catalog-items .card")
	b.findInCatalog(xssID)
	if got := b.ids("#catalog-items .card"); len(got) != items || !slices.IsSorted(got) {
		t.Errorf("catalog cards %v: want all %d items in id order", got, items)
	}

	// The item page and its similar items.
	b.open("#/item/default/"+seedID(4), "#item-meta dd")
	if title := b.text("#item-title"); title != "Object 1, photo 0" {
		t.Errorf("item title %q, want the name", title)
	}
	b.wait("similar items", `document.querySelector('#similar .card:not(.skeleton)') || document.querySelector('#similar-error .error-box')`, 30*time.Second)
	if msg := b.text("#similar-error"); msg != "" {
		t.Fatalf("similar items failed in the page: %s", msg)
	}
	if sim := b.ids("#similar .card:not(.skeleton)"); len(sim) == 0 || slices.Contains(sim, seedID(4)) || !slices.Contains(groupIDs(1), sim[0]) {
		t.Errorf("similar items %v: want another photo of object 1 first, not the item itself", sim)
	}

	// A photo search, with the filter controls of the collection's fields.
	b.searchFor(s.photo(3))
	b.wait("filter controls", `document.querySelector('.filter-fields select, .filter-fields input')`, 15*time.Second)
	if got := b.ids(resultCards); len(got) == 0 || !slices.Contains(groupIDs(0), got[0]) {
		t.Errorf("search: first result %v, want one of %v", first(got), groupIDs(0))
	}

	// The status page: the collection counted over the shards, and the cluster section.
	b.open("#/status", "#cluster-replicas")
	b.wait("status tiles", `document.querySelector('#status-tiles .tile')`, 15*time.Second)
	if got := b.text("#status-tiles"); !strings.Contains(got, fmt.Sprint(items)) {
		t.Errorf("status tiles %q lack the %d items", got, items)
	}
	b.do("back to the catalog", 5*time.Second, chromedp.Navigate(s.URL+"/#/catalog"))
	b.noConsoleProblems()
}
