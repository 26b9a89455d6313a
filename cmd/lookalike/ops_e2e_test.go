package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lookalike/lookalike/internal/locate"
)

const (
	alertRulesFile = "../../configs/prometheus-alerts.yaml"
	dashboardFile  = "../../configs/grafana-dashboard.json"
)

// TestE2EDashboardSeriesOnFreshServer: every metric the example alert rules and Grafana dashboard
// query is in the very first /metrics of a fresh server (empty data directory, a probe set
// configured, no API request served), so a new dashboard shows the server and the rules have
// something to evaluate; `up` is the one exception, which Prometheus adds to every scrape itself.
// The probe set's last-run timestamp is the server's start, so LookalikeProbesStale can fire.
func TestE2EDashboardSeriesOnFreshServer(t *testing.T) {
	uk, err := locate.Dir("ukbench", locate.DatasetDirs())
	if err != nil {
		t.Skipf("UKBench photos not found: %v", err)
	}
	dir := t.TempDir()
	manifest := filepath.Join(dir, "shoes.csv")
	if err := os.WriteFile(manifest, []byte("id,path,group\np1,"+filepath.Join(uk, "ukbench00000.jpg")+",g1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Unix()
	srv := startServer(t, filepath.Join(dir, "data"), "LOOKALIKE_QUALITY_PROBES_MANIFESTS="+manifest)
	r := httpDo(t.Context(), "GET", srv.url+"/metrics", "", nil)
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", r.status, r.err)
	}
	exported := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		exported[line[:strings.IndexAny(line, "{ ")]] = true
	}

	used := map[string][]string{} // metric → the rules and panels that query it
	for where, exprs := range configQueries(t) {
		for _, e := range exprs {
			for _, m := range promQLMetrics(e) {
				if !slices.Contains(used[m], where) {
					used[m] = append(used[m], where)
				}
			}
		}
	}
	if len(used) < 15 { // 17 when written
		t.Fatalf("the configs query only %d metrics: the parser lost some (%v)", len(used), used)
	}
	if _, ok := used["up"]; !ok {
		t.Error("no rule or panel reads up: a server that is gone would go unnoticed")
	}
	for m, where := range used {
		if m != "up" && !exported[m] {
			t.Errorf("%s (used by %s) is not in a fresh server's /metrics", m, strings.Join(where, ", "))
		}
	}

	// The RED panels and rules select API routes (/v1/...): their series exist before the first
	// request too, not only those of the health checks.
	body := string(r.body)
	for _, want := range []string{
		`lookalike_http_requests_total{method="POST",route="/v1/collections/:c/search",status="200"} 0`,
		`lookalike_http_requests_total{method="GET",route="/v1/collections/:c/items/:id/similar",status="200"} 0`,
		`lookalike_http_request_duration_seconds_bucket{method="POST",route="/v1/collections/:c/search",status="2xx",le="0.512"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s on a fresh server", want)
		}
	}
	// A gauge nobody measured is NaN, never 0; the probe set's clock started with the server.
	if !strings.Contains(body, `lookalike_quality_ann_recall{collection="default"} NaN`) {
		t.Error("the recall gauge of the default collection is not NaN before any sample")
	}
	m := regexp.MustCompile(`lookalike_quality_probe_last_run_timestamp_seconds\{set="shoes"\} (\S+)`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no last-run timestamp for the configured probe set shoes")
	}
	if ts, _ := strconv.ParseFloat(m[1], 64); ts < float64(start-1) || ts > float64(time.Now().Unix()+1) {
		t.Errorf("probe set last run %s, want the server's start (%d)", m[1], start)
	}

	// With Prometheus's own checker at hand, the rules must also parse.
	if promtool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(promtool, "check", "rules", alertRulesFile).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules: %v\n%s", err, out)
		}
	}
}

// configQueries returns the PromQL of the alert rules (by alert) and of the dashboard (by panel,
// and the templating queries).
func configQueries(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	raw, err := os.ReadFile(alertRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("%s: %v", alertRulesFile, err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = append(out["alert "+r.Alert], r.Expr)
		}
	}
	if raw, err = os.ReadFile(dashboardFile); err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string                  `json:"title"`
		Targets []struct{ Expr string } `json:"targets"`
		Panels  []json.RawMessage       `json:"panels"`
	}
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("%s: %v", dashboardFile, err)
			}
			for _, tg := range p.Targets {
				out["panel "+p.Title] = append(out["panel "+p.Title], tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		// label_values(METRIC, label) is Grafana's, not PromQL: its first argument is the metric.
		if m := regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`).FindStringSubmatch(v.Definition); m != nil {
			out["variable "+v.Name] = append(out["variable "+v.Name], m[1])
		}
	}
	return out
}

var (
	pqStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	pqMatchers = regexp.MustCompile(`\{[^}]*\}`)
	pqRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	pqGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	pqOffset   = regexp.MustCompile(`\boffset\s+\w+`)
	pqIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\s*\(?`)
	pqKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true, "offset": true, "inf": true, "nan": true}
)

// promQLMetrics returns the metric names a PromQL expression selects: what remains once strings,
// label matchers, ranges, grouping clauses and offsets are gone, minus function calls and keywords.
func promQLMetrics(expr string) []string {
	for _, re := range []*regexp.Regexp{pqStrings, pqMatchers, pqRanges, pqGrouping, pqOffset} {
		expr = re.ReplaceAllString(expr, " ")
	}
	var out []string
	for _, tok := range pqIdent.FindAllString(expr, -1) {
		name := strings.TrimSpace(tok)
		if strings.HasSuffix(name, "(") || pqKeywords[strings.ToLower(name)] {
			continue
		}
		out = append(out, name)
	}
	return out
}

// TestPromQLMetrics pins the name extraction the dashboard test relies on.
func TestPromQLMetrics(t *testing.T) {
	for expr, want := range map[string]string{
		`lookalike_quality_ann_recall < 0.95 and on (collection) increase(lookalike_quality_recall_samples_total{outcome="measured"}[1h]) >= 20`: "lookalike_quality_ann_recall lookalike_quality_recall_samples_total",
		`histogram_quantile(0.5, sum by (collection, le) (rate(lookalike_quality_top1_score_bucket{collection=~"$collection"}[1h])))`:            "lookalike_quality_top1_score_bucket",
		`time() - lookalike_quality_probe_last_run_timestamp_seconds > 3 * 3600`:                                                                 "lookalike_quality_probe_last_run_timestamp_seconds",
		`x < 0.9 * max_over_time(x[7d] offset 1h) or absent(up{job="lookalike"})`:                                                                "x x up",
	} {
		if got := strings.Join(promQLMetrics(expr), " "); got != want {
			t.Errorf("%s: got %q, want %q", expr, got, want)
		}
	}
}
