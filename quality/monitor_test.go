package quality

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
)

// newTestMonitor runs a monitor over db with a fake clock; it stops with the test.
func newTestMonitor(t *testing.T, db *index.DB, mutate func(*config.Config)) (*Monitor, *fakeClock) {
	t.Helper()
	return newTestMonitorWith(t, db, nil, mutate)
}

func newTestMonitorWith(t *testing.T, db *index.DB, eng Embedder, mutate func(*config.Config)) (*Monitor, *fakeClock) {
	t.Helper()
	cfg := config.Default()
	if mutate != nil {
		mutate(&cfg)
	}
	q, err := New(cfg, eng, db, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	q.now = clk.now
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	q.Start(ctx, &wg)
	t.Cleanup(func() { cancel(); wg.Wait() })
	return q, clk
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(d time.Duration) {
	c.mu.Lock()
	c.t = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(d)
	c.mu.Unlock()
}

func openTestDB(t *testing.T) *index.DB {
	t.Helper()
	db, err := index.Open(t.TempDir(), &index.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// metricValue is the value of a collector holding one gauge or counter series (NaN when none).
func metricValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	v := math.NaN()
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		switch {
		case pb.Gauge != nil:
			v = pb.Gauge.GetValue()
		case pb.Counter != nil:
			v = pb.Counter.GetValue()
		}
	}
	return v
}

func seriesCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}

// waitFor polls cond (the monitor works in the background) for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNew: setups New refuses, with the error callers branch on.
func TestNew(t *testing.T) {
	db := openTestDB(t)
	shared := prometheus.NewRegistry()
	if _, err := New(config.Default(), nil, db, shared, nil); err != nil {
		t.Fatalf("first monitor on a registry: %v", err)
	}
	withProbes := config.Default()
	withProbes.Quality.Probes.Manifests = []string{"probes.csv"}
	tests := []struct {
		name string
		cfg  config.Config
		reg  prometheus.Registerer
		want error // nil: any error
		ok   bool
	}{
		{"defaults, unexported metrics", config.Default(), nil, nil, true},
		{"probes without an embedder", withProbes, prometheus.NewRegistry(), ErrConfig, false},
		{"metrics already registered", config.Default(), shared, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := New(tt.cfg, nil, db, tt.reg, nil)
			if tt.ok {
				if err != nil || q == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted the setup")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

// TestObserveNeverBlocks: with the loops not started, observations beyond the queue are dropped and
// counted instead of blocking the request path.
func TestObserveNeverBlocks(t *testing.T) {
	db := openTestDB(t)
	col, err := db.CreateCollection("c", index.CollectionConfig{Fingerprint: "c", Dims: 2})
	if err != nil {
		t.Fatal(err)
	}
	q, err := New(config.Default(), nil, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range obsQueue + 10 {
		q.Observe(col, []float32{1, 0}, index.SearchOptions{K: 1}, nil)
	}
	if got := metricValue(t, q.m.dropped.WithLabelValues("observe")); got != 10 {
		t.Fatalf("dropped %v observations, want 10", got)
	}
}
