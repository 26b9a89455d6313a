package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lookalike/lookalike/api"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/internal/guard"
	"github.com/lookalike/lookalike/internal/ingest"
	"github.com/lookalike/lookalike/internal/locate"
)

func runServe(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "serve")
	addr := fs.String("addr", "", "listen address HOST:PORT (default from the config: server.addr)")
	data := fs.String("data", "", "data directory (default from the config: data.dir)")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	if *addr != "" {
		cfg.Server.Addr = *addr
	}
	if *data != "" {
		cfg.Data.Dir = *data
	}
	log := env.logger(cfg)

	// Listen first: a port already taken is the most common start-up failure and the cheapest to report.
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Server.Addr, err)
	}
	defer ln.Close()

	engines, err := startEngines(ctx, cfg, env)
	if err != nil {
		return err
	}
	defer closeEngines(engines)
	eng := engines[0]
	info := eng.Info()
	log.Info("model ready", "model", info.ModelID, "fingerprint", info.Fingerprint, "dims", info.Dims, "device", info.Device)

	db, err := openDB(cfg, env)
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("close data directory", "err", err)
		}
	}()
	col, err := collectionFor(db, cfg, cfg.Data.DefaultCollection, info, "", true)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := api.New(cfg, eng, db, reg, log)
	if err != nil {
		return err
	}
	for _, other := range engines[1:] {
		// One engine per configured model: a collection rebuilt with it (docs/lifecycle.md) is served by it.
		srv.AddEngine(other)
		log.Info("model ready", "model", other.Info().ModelID, "fingerprint", other.Info().Fingerprint)
	}
	if cfg.Cluster.Enabled {
		stop, err := serveCluster(ctx, cfg, col, srv, reg, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	srv.SetReady(true)
	log.Info("serving", "addr", ln.Addr().String(), "data", cfg.Data.Dir, "ui", "http://"+displayAddr(ln.Addr()))

	var wg sync.WaitGroup
	demoCtx, stopDemo := context.WithCancel(ctx)
	defer func() {
		stopDemo()
		wg.Wait()
	}()
	// No demo catalog in cluster mode: it would load into this node's local store, not the cluster.
	if want, dirs := demoWanted(cfg, col) && !cfg.Cluster.Enabled, demoDirs(cfg); want && len(dirs) > 0 {
		// A panic restarts the load, which skips what is already stored (content hashes).
		guard.Go(demoCtx, &wg, log, "demo catalog", func(ctx context.Context) {
			loadDemo(ctx, cfg, log, eng, col, profileOf(eng, col), dirs)
		})
	} else if want {
		log.Warn("demo catalog: no demo photos found; set LOOKALIKE_DEMO_DIR or demo.dir")
	}

	err = srv.Serve(ctx, ln)
	stopDemo()
	wg.Wait()
	return err
}

// serveCluster puts srv in cluster mode (docs/cluster.md): writes through the replicated log,
// searches over every shard. stop closes the node.
func serveCluster(ctx context.Context, cfg config.Config, col *index.Collection, srv *api.Server, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	cb, err := startCluster(ctx, cfg, col, log, clusterAPIErrs{unavailable: api.ErrClusterUnavailable, notCaughtUp: api.ErrClusterNotCaughtUp})
	if err != nil {
		return nil, err
	}
	srv.SetCluster(cb)
	reg.MustRegister(newClusterCollector(cb))
	log.Info("cluster mode", "node", cfg.Cluster.NodeName, "shards", cb.node.Shards())
	return func() {
		if err := cb.Close(); err != nil {
			log.Error("close cluster node", "err", err)
		}
	}, nil
}

func displayAddr(a net.Addr) string { return localAddr(a.String()) }

// localAddr is host:port as a client on this machine dials it: a wildcard or empty host (":8080",
// "[::]:8080", "0.0.0.0:8080") is localhost.
func localAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func demoWanted(cfg config.Config, col *index.Collection) bool {
	mode := cfg.Demo.Mode
	switch mode {
	case "on":
		return true
	case "off":
		return false
	}
	return col.Info().Count == 0
}

// demoDirs returns the demo photo folders: demo.dir or $LOOKALIKE_DEMO_DIR, else the shared
// benchmark photos (UKBench and the Oxford subset) found on the dataset search path.
func demoDirs(cfg config.Config) []string {
	dir := cfg.Demo.Dir
	if dir == "" {
		dir = os.Getenv("LOOKALIKE_DEMO_DIR")
	}
	if dir != "" {
		return []string{dir}
	}
	var dirs []string
	for _, name := range []string{"ukbench", filepath.Join("oxford5k-subset", "images")} {
		if d, err := locate.Dir(name, locate.DatasetDirs()); err == nil {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

var trailingNumber = regexp.MustCompile(`_?\d+$`)

// demoSources gives demo photos descriptive metadata so filters have something to work on: the
// dataset, and a category from the file name (UKBench object group, Oxford landmark).
func demoSources(dirs []string) ([]ingest.Source, error) {
	srcs, err := ingest.Collect(dirs)
	if err != nil {
		return nil, err
	}
	for i := range srcs {
		base := filepath.Base(srcs[i].ID)
		meta := map[string]any{"source": "demo"}
		switch {
		case strings.HasPrefix(base, "ukbench"):
			var n int
			fmt.Sscanf(strings.TrimPrefix(base, "ukbench"), "%d", &n)
			meta["dataset"] = "ukbench"
			meta["category"] = fmt.Sprintf("object-%03d", n/4)
		case strings.Contains(srcs[i].Path, "oxford"):
			meta["dataset"] = "oxford5k"
			meta["category"] = strings.ReplaceAll(trailingNumber.ReplaceAllString(base, ""), "_", " ")
		default:
			if dir := filepath.Dir(srcs[i].ID); dir != "." {
				meta["category"] = dir
			}
		}
		srcs[i].Metadata, _ = json.Marshal(meta)
	}
	return srcs, nil
}

func loadDemo(ctx context.Context, cfg config.Config, log *slog.Logger, eng ingest.Embedder, col *index.Collection, profile string, dirs []string) {
	srcs, err := demoSources(dirs)
	if err != nil {
		log.Error("demo catalog", "err", err)
		return
	}
	log.Info("demo catalog: indexing", "photos", len(srcs), "dirs", dirs)
	lastPct := -1
	rep, err := ingest.Run(ctx, eng, col, srcs, ingest.Options{
		Workers: cfg.Embed.Workers, Logger: log,
		Policy: ingest.Policy{ThumbnailSize: cfg.Limits.ThumbnailSize, ThumbnailQuality: cfg.Limits.ThumbnailQuality,
			SourceSize: cfg.Limits.SourceSize, SourceQuality: cfg.Limits.SourceQuality,
			MaxPixels: cfg.Limits.MaxPixels, Profile: profile},
		Progress: func(p ingest.Progress) {
			if pct := 100 * p.Done / max(p.Total, 1); pct/10 != lastPct/10 {
				lastPct = pct
				log.Info("demo catalog: progress", "done", p.Done, "total", p.Total, "percent", pct,
					"rate_per_s", fmt.Sprintf("%.0f", float64(p.Done)/max(p.Elapsed.Seconds(), 1e-9)))
			}
		},
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("demo catalog: stopped", "err", err)
		return
	}
	for _, f := range rep.Failures {
		log.Warn("demo catalog: photo skipped", "id", f.ID, "path", f.Path, "err", f.Err)
	}
	log.Info("demo catalog: done", "added", rep.Added, "unchanged", rep.Skipped, "failed", rep.Failed, "seconds", fmt.Sprintf("%.1f", rep.Elapsed.Seconds()))
}
