package ui_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestStatusRebuild: a collection of its own is rebuilt into another profile through the API; the
// status page shows the rebuild with its progress, compares the generations on demand (probe
// precision, scores, latency) and switches and rolls back with its buttons.
//
// It leaves a ready rebuild on the shared server, so the status page keeps focusable buttons after
// its heading; TestKeyboardAndPhone tabs from that heading to the skip link and needs none. This
// file's name sorts after ui_browser_test.go, so the test runs after that one.
func TestStatusRebuild(t *testing.T) {
	s := startServer(t)
	name := fmt.Sprintf("rb-%d", time.Now().UnixNano()%1e6)
	post := func(route, body string) (int, string) {
		resp, err := http.Post(s.URL+route, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s: %v", route, err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.String()
	}
	if code, body := post("/v1/collections", `{"name":"`+name+`"}`); code != http.StatusCreated {
		t.Fatalf("create %s: %d %s", name, code, body)
	}
	for i := 0; i < 3; i++ {
		if resp, body, err := s.postImage("/v1/collections/"+name+"/items", s.photo(i), nil); err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("add photo %d: %v %s", i, err, body)
		}
	}
	var col struct {
		Profile string `json:"profile"`
	}
	s.getJSON(t, "/v1/collections/"+name, &col)
	target := "fast"
	if col.Profile == "fast" {
		target = "ms317"
	}
	if code, body := post("/v1/collections/"+name+"/rebuild", `{"profile":"`+target+`"}`); code != http.StatusAccepted {
		t.Fatalf("rebuild: %d %s", code, body)
	}

	b := newBrowser(t, s.URL)
	b.open("#/status", "#status-tiles .tile")
	card := fmt.Sprintf(`#status-rebuilds .rebuild[data-collection=%s]`, quote(name))
	b.wait("the rebuild, ready", fmt.Sprintf(`!document.querySelector('#status-rebuilds').hidden &&
		document.querySelector(%q) && document.querySelector(%q).dataset.state === 'ready'`, card, card), 60*time.Second)
	if got := b.text(card + " .rebuild-title"); got != name+": "+name+" → "+name+"@2" {
		t.Errorf("title %q", got)
	}
	if got := b.text(card + " .rebuild-progress"); !strings.Contains(got, "Ready to switch: 3 of 3 items") {
		t.Errorf("progress %q", got)
	}
	if v := eval[float64](b, fmt.Sprintf(`document.querySelector(%q).value`, card+" progress")); v != 3 {
		t.Errorf("progress bar at %v, want 3", v)
	}

	b.do("compare", 10*time.Second, chromedp.Click(chromedp.CSS(card+" .rebuild-compare")))
	b.wait("the report", fmt.Sprintf(`document.querySelector(%q) || document.querySelector(%q)`, card+" .rebuild-report-table", card+" .rebuild-report .error-box"), 60*time.Second)
	if got := b.text(card + " .rebuild-report"); !strings.Contains(got, "Live ("+name+")") || !strings.Contains(got, "Other ("+name+"@2)") || !strings.Contains(got, "Items33") {
		t.Errorf("report %q", got)
	}

	if d := eval[string](b, fmt.Sprintf(`getComputedStyle(document.querySelector(%q)).display`, card+" .actions")); d != "flex" {
		t.Errorf("the section's stylesheet is not applied (actions display %q)", d)
	}
	b.do("switch", 10*time.Second, chromedp.Click(chromedp.CSS(card+" .rebuild-switch")))
	b.wait("switched", fmt.Sprintf(`document.querySelector(%q).dataset.state === 'switched' && !document.querySelector(%q).hidden`, card, card+" .rebuild-rollback"), 15*time.Second)
	var job struct {
		Live string `json:"live"`
	}
	if s.getJSON(t, "/v1/collections/"+name+"/rebuild", &job); job.Live != name+"@2" {
		t.Errorf("after the switch button the alias names %q", job.Live)
	}
	if got := b.text(card + " .rebuild-meta"); !strings.Contains(got, "answering from "+name+"@2") {
		t.Errorf("meta after the switch %q", got)
	}
	b.do("roll back", 10*time.Second, chromedp.Click(chromedp.CSS(card+" .rebuild-rollback")))
	b.wait("rolled back", fmt.Sprintf(`document.querySelector(%q).dataset.state === 'ready'`, card), 15*time.Second)
	if s.getJSON(t, "/v1/collections/"+name+"/rebuild", &job); job.Live != name {
		t.Errorf("after the rollback button the alias names %q", job.Live)
	}
	b.noConsoleProblems("/v1/cluster") // a single node's 404 not_clustered
}
