// Package config holds Lookalike's configuration: the YAML file, environment overrides and
// validation. Only cmd/lookalike uses it, and hands it the environment (Load's environ): config
// itself reads no variable. The packages it configures receive plain structs.
//
// Defaults are not restated here: Default takes them from the constants of the packages that own
// them (index, embed/spec, embed), so a default changes in one place.
//
// Precedence, lowest first: built-in defaults (Default), the YAML file, LOOKALIKE_* environment
// variables, command-line flags (applied by the caller). An environment variable names a key by its
// YAML path in upper case with underscores, e.g. server.addr → LOOKALIKE_SERVER_ADDR and
// embed.max_batch_wait → LOOKALIKE_EMBED_MAX_BATCH_WAIT.
//
// # Caveats
//
// Unknown keys in the file are errors, so a typo is reported with its line instead of silently
// falling back to a default.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/rerank"
)

// ErrInvalid wraps every validation failure; the message names the offending key.
var ErrInvalid = errors.New("invalid configuration")

// Config is the whole configuration tree. Field comments live in configs/lookalike.yaml.
type Config struct {
	Server Server     `yaml:"server"`
	Auth   Auth       `yaml:"auth"`
	Data   Data       `yaml:"data"`
	Index  Index      `yaml:"index"`
	Limits Limits     `yaml:"limits"`
	Embed  Embed      `yaml:"embed"`
	Model  spec.Model `yaml:"model"`
	// Models are the other models collections may be rebuilt with (docs/lifecycle.md); each id is
	// unique. The server loads an engine for each.
	Models    []spec.Model `yaml:"models"`
	Lifecycle Lifecycle    `yaml:"lifecycle"`
	Quality   Quality      `yaml:"quality"`
	Intel     Intel        `yaml:"intel"`
	Demo      Demo         `yaml:"demo"`
	Log       Log          `yaml:"log"`
	Cluster   Cluster      `yaml:"cluster"`
}

type Server struct {
	Addr               string        `yaml:"addr"`
	ReadTimeout        time.Duration `yaml:"read_timeout"`
	WriteTimeout       time.Duration `yaml:"write_timeout"`
	ShutdownTimeout    time.Duration `yaml:"shutdown_timeout"`
	MaxInflightEmbeds  int           `yaml:"max_inflight_embeds"`
	MaxQueuedEmbeds    int           `yaml:"max_queued_embeds"`
	QueueWait          time.Duration `yaml:"queue_wait"`
	RetryAfter         time.Duration `yaml:"retry_after"`
	MetricsRequireAuth bool          `yaml:"metrics_require_auth"`
	Pprof              bool          `yaml:"pprof"`
	StatsWindow        time.Duration `yaml:"stats_window"`
	// CORSOrigins are the browser origins (scheme://host[:port]) allowed to call the API from
	// their pages; "*" allows any origin. Empty: no CORS headers (same-origin only).
	CORSOrigins []string `yaml:"cors_origins"`
}

type Auth struct {
	// Keys are "scope:key" strings, scope being read or write (write implies read).
	Keys []string `yaml:"keys"`
}

type Data struct {
	Dir               string `yaml:"dir"`
	DefaultCollection string `yaml:"default_collection"`
}

type Index struct {
	M                int           `yaml:"m"`
	EfConstruction   int           `yaml:"ef_construction"`
	EfSearch         int           `yaml:"ef_search"`
	ExactThreshold   int           `yaml:"exact_threshold"`
	SnapshotInterval time.Duration `yaml:"snapshot_interval"`
	// RerankSearch and RerankSimilar are the re-ranking of searches (by image, vector or id) and
	// of similar-item requests that name none: none, qe, kr or qe+kr.
	RerankSearch  string `yaml:"rerank_search"`
	RerankSimilar string `yaml:"rerank_similar"`
	Compression   string `yaml:"compression"`
	BuildWorkers  int    `yaml:"build_workers"`
}

type Limits struct {
	MaxBodyBytes     int     `yaml:"max_body_bytes"`
	MaxPixels        int64   `yaml:"max_pixels"`
	MaxAspectRatio   float64 `yaml:"max_aspect_ratio"`
	MaxK             int     `yaml:"max_k"`
	DefaultK         int     `yaml:"default_k"`
	MaxBatchItems    int     `yaml:"max_batch_items"`
	MaxMetadataBytes int     `yaml:"max_metadata_bytes"`
	MaxIDBytes       int     `yaml:"max_id_bytes"`
	ThumbnailSize    int     `yaml:"thumbnail_size"`
	ThumbnailQuality int     `yaml:"thumbnail_quality"`
	SourceSize       int     `yaml:"source_size"`
	SourceQuality    int     `yaml:"source_quality"`
}

type Embed struct {
	Device         string        `yaml:"device"`
	CUDADeviceID   int           `yaml:"cuda_device_id"`
	Workers        int           `yaml:"workers"`
	IntraOpThreads int           `yaml:"intra_op_threads"`
	MaxBatch       int           `yaml:"max_batch"`
	MaxBatchWait   time.Duration `yaml:"max_batch_wait"`
	RuntimeLibrary string        `yaml:"runtime_library"`
	ModelDirs      []string      `yaml:"model_dirs"`
}

type Quality struct {
	RecallSampleRate float64       `yaml:"recall_sample_rate"`
	FeedbackWindow   time.Duration `yaml:"feedback_window"`
	MinScore         float64       `yaml:"min_score"`
	Probes           Probes        `yaml:"probes"`
}

// Probes are labelled eval sets re-queried by the server (docs/quality.md).
type Probes struct {
	Manifests  []string      `yaml:"manifests"`
	Collection string        `yaml:"collection"`
	Interval   time.Duration `yaml:"interval"`
	K          int           `yaml:"k"`
	GroupField string        `yaml:"group_field"`
}

// Intel configures catalog intelligence: duplicate tiers, ingest policy, diversity and tagging.
type Intel struct {
	NearDuplicateScore float64       `yaml:"near_duplicate_score"`
	PixelMatch         float64       `yaml:"pixel_match"`
	ChromaMatch        float64       `yaml:"chroma_match"`
	SimilarScore       float64       `yaml:"similar_score"`
	OnDuplicate        string        `yaml:"on_duplicate"`
	DiversifyTier      string        `yaml:"diversify_tier"`
	DiversifyPixels    bool          `yaml:"diversify_pixels"`
	DiversifyScore     float64       `yaml:"diversify_score"`
	TagNeighbors       int           `yaml:"tag_neighbors"`
	TagMinConfidence   float64       `yaml:"tag_min_confidence"`
	TrashRetention     time.Duration `yaml:"trash_retention"`
}

// Lifecycle configures shadow rebuilds.
type Lifecycle struct {
	// Grace is how long the previous generation keeps receiving writes after a switch; 0 = 24h.
	Grace time.Duration `yaml:"grace"`
	// CanaryShare is the share (0..1) of searches on an alias answered from the generation a rebuild
	// has made ready, before any switch: a canary whose telemetry is labelled generation="shadow".
	CanaryShare float64 `yaml:"canary_share"`
}

type Demo struct {
	// Mode is auto (index the demo photos when the default collection is empty), on or off.
	Mode string `yaml:"mode"`
	Dir  string `yaml:"dir"`
}

type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// defaultModel is the default model with its spatial feature map on: "why it matched" heatmaps
// (GET /v1/collections/{c}/search/explain) need it, and on 2 cores it costs within the noise of
// `lookalike bench embed` (about 2%, docs/intelligence.md). The fingerprint does not include it.
func defaultModel() spec.Model {
	m := spec.DefaultModel()
	m.FeatureMapTensor = spec.DefaultFeatureMapTensor
	m.Profile = spec.DefaultProfile
	return m
}

// Default returns the built-in configuration; configs/lookalike.yaml documents the same values.
func Default() Config {
	return Config{
		Server: Server{
			Addr: ":8080", ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
			ShutdownTimeout: 15 * time.Second, MaxInflightEmbeds: 4, MaxQueuedEmbeds: 32,
			QueueWait: 2 * time.Second, RetryAfter: time.Second, StatsWindow: 10 * time.Minute,
		},
		Data: Data{Dir: "./data", DefaultCollection: "default"},
		Index: Index{M: index.DefaultM, EfConstruction: index.DefaultEfConstruction, EfSearch: index.DefaultEfSearch,
			ExactThreshold: index.DefaultExactThreshold, SnapshotInterval: index.DefaultSnapshotInterval,
			RerankSearch: index.DefaultRerankSearch.String(), RerankSimilar: index.DefaultRerankSimilar.String(),
			Compression: index.DefaultCompression},
		Limits: Limits{
			MaxBodyBytes: 32 << 20, MaxPixels: spec.DefaultMaxPixels, MaxAspectRatio: spec.DefaultMaxAspectRatio,
			MaxK: 1000, DefaultK: 10, MaxBatchItems: 256, MaxMetadataBytes: 64 << 10, MaxIDBytes: 256,
			ThumbnailSize: spec.DefaultThumbnailSize, ThumbnailQuality: spec.DefaultThumbnailQuality,
			SourceSize: spec.DefaultSourceSize, SourceQuality: spec.DefaultSourceQuality,
		},
		Embed: Embed{Device: "auto"},
		Model: defaultModel(),
		Quality: Quality{RecallSampleRate: 0.01, FeedbackWindow: time.Hour, MinScore: 0.75,
			Probes: Probes{Interval: 15 * time.Minute, K: 10, GroupField: "group"}},
		Intel: Intel{NearDuplicateScore: 0.80, PixelMatch: 0.94, ChromaMatch: 0.86, SimilarScore: 0.80, OnDuplicate: "allow", DiversifyTier: "near", DiversifyScore: 0.95,
			TagNeighbors: 10, TagMinConfidence: 0.75, TrashRetention: 7 * 24 * time.Hour},
		Lifecycle: Lifecycle{Grace: 24 * time.Hour},
		Demo:      Demo{Mode: "auto"},
		Log:       Log{Level: "info", Format: "text"},
		Cluster:   defaultCluster(),
	}
}

// Load reads path (empty = defaults only), then applies LOOKALIKE_* environment overrides from
// environ (os.Environ() in production) and validates the result.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config %q: %w", path, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		// An empty file decodes to io.EOF and means "defaults".
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("parse config %q: %w: %v", path, ErrInvalid, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	// "keys: []" and an absent key mean the same; keep one representation.
	if len(cfg.Auth.Keys) == 0 {
		cfg.Auth.Keys = nil
	}
	if len(cfg.Server.CORSOrigins) == 0 {
		cfg.Server.CORSOrigins = nil
	}
	if len(cfg.Embed.ModelDirs) == 0 {
		cfg.Embed.ModelDirs = nil
	}
	if len(cfg.Quality.Probes.Manifests) == 0 {
		cfg.Quality.Probes.Manifests = nil
	}
	if len(cfg.Cluster.Routes) == 0 {
		cfg.Cluster.Routes = nil
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// invalid is the error of a bad key.
func invalid(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...))
}

// validate checks the index section.
func (ix Index) validate() error {
	switch {
	case ix.M < 2 || ix.M > 128:
		return invalid("index.m", "must be in 2..128, got %d", ix.M)
	case ix.EfConstruction < ix.M:
		return invalid("index.ef_construction", "must be >= index.m, got %d", ix.EfConstruction)
	case ix.EfSearch < 1 || ix.EfSearch > index.MaxEf:
		return invalid("index.ef_search", "must be in 1..%d (index.MaxEf), got %d", index.MaxEf, ix.EfSearch)
	case ix.Compression != index.CompressionSQ8 && ix.Compression != index.CompressionNone:
		return invalid("index.compression", "must be %q or %q, got %q", index.CompressionSQ8, index.CompressionNone, ix.Compression)
	case ix.BuildWorkers < 0:
		return invalid("index.build_workers", "must be >= 0 (0 = all cores), got %d", ix.BuildWorkers)
	}
	return nil
}

// Validate checks every value and names the first bad key.
func (c *Config) Validate() error {
	bad := invalid
	switch {
	case c.Server.Addr == "":
		return bad("server.addr", "must not be empty")
	case c.Server.MaxInflightEmbeds < 1:
		return bad("server.max_inflight_embeds", "must be >= 1, got %d", c.Server.MaxInflightEmbeds)
	case c.Server.MaxQueuedEmbeds < 0:
		return bad("server.max_queued_embeds", "must be >= 0, got %d", c.Server.MaxQueuedEmbeds)
	case c.Server.ShutdownTimeout <= 0:
		return bad("server.shutdown_timeout", "must be > 0")
	case c.Server.StatsWindow < time.Minute:
		return bad("server.stats_window", "must be >= 1m")
	case c.Data.Dir == "":
		return bad("data.dir", "must not be empty")
	case c.Data.DefaultCollection == "":
		return bad("data.default_collection", "must not be empty")
	case c.Index.validate() != nil:
		return c.Index.validate()
	case c.Limits.MaxBodyBytes < 1<<10:
		return bad("limits.max_body_bytes", "must be >= 1024, got %d", c.Limits.MaxBodyBytes)
	case c.Limits.MaxPixels < 64*64:
		return bad("limits.max_pixels", "must be >= 4096, got %d", c.Limits.MaxPixels)
	case !(c.Limits.MaxAspectRatio >= 1):
		return bad("limits.max_aspect_ratio", "must be >= 1 (longer side / shorter side), got %v", c.Limits.MaxAspectRatio)
	case c.Limits.MaxK < 1 || c.Limits.MaxK > index.MaxK:
		// The index ranks at most index.MaxK results per search; a larger k could never be served.
		return bad("limits.max_k", "must be in 1..%d (the index's result window), got %d", index.MaxK, c.Limits.MaxK)
	case c.Limits.DefaultK < 1 || c.Limits.DefaultK > c.Limits.MaxK:
		return bad("limits.default_k", "must be in 1..limits.max_k, got %d", c.Limits.DefaultK)
	case c.Limits.MaxBatchItems < 1:
		return bad("limits.max_batch_items", "must be >= 1")
	case c.Limits.MaxMetadataBytes < 2:
		return bad("limits.max_metadata_bytes", "must be >= 2")
	case c.Limits.MaxIDBytes < 1 || c.Limits.MaxIDBytes > 1024:
		return bad("limits.max_id_bytes", "must be in 1..1024")
	case c.Limits.ThumbnailSize < 32 || c.Limits.ThumbnailSize > 2048:
		return bad("limits.thumbnail_size", "must be in 32..2048, got %d", c.Limits.ThumbnailSize)
	case c.Limits.SourceSize != 0 && (c.Limits.SourceSize < spec.MinSourceSize || c.Limits.SourceSize > 4096):
		return bad("limits.source_size", "must be 0 (no source renditions) or in %d..4096, got %d", spec.MinSourceSize, c.Limits.SourceSize)
	case c.Limits.SourceQuality < 1 || c.Limits.SourceQuality > 100:
		return bad("limits.source_quality", "must be in 1..100, got %d", c.Limits.SourceQuality)
	case c.Limits.ThumbnailQuality < 1 || c.Limits.ThumbnailQuality > 100:
		return bad("limits.thumbnail_quality", "must be in 1..100")
	case c.Embed.Device != "auto" && c.Embed.Device != "cpu" && c.Embed.Device != "cuda":
		return bad("embed.device", "must be auto, cpu or cuda, got %q", c.Embed.Device)
	case c.Embed.Workers < 0:
		return bad("embed.workers", "must be >= 0 (0 = one per core)")
	case c.Embed.IntraOpThreads < 0:
		return bad("embed.intra_op_threads", "must be >= 0 (0 = auto)")
	case c.Embed.MaxBatch < 0:
		return bad("embed.max_batch", "must be >= 0 (0 = auto)")
	case c.Embed.MaxBatchWait < 0:
		return bad("embed.max_batch_wait", "must be >= 0 (0 = auto)")
	case c.Quality.RecallSampleRate < 0 || c.Quality.RecallSampleRate > 1:
		return bad("quality.recall_sample_rate", "must be in 0..1, got %v", c.Quality.RecallSampleRate)
	case c.Quality.Probes.Interval < time.Second:
		return bad("quality.probes.interval", "must be >= 1s")
	case c.Quality.Probes.K < 1 || c.Quality.Probes.K > c.Limits.MaxK:
		return bad("quality.probes.k", "must be in 1..limits.max_k, got %d", c.Quality.Probes.K)
	case c.Quality.Probes.GroupField == "":
		return bad("quality.probes.group_field", "must not be empty")
	case c.Demo.Mode != "auto" && c.Demo.Mode != "on" && c.Demo.Mode != "off":
		return bad("demo.mode", "must be auto, on or off, got %q", c.Demo.Mode)
	case c.Log.Level != "debug" && c.Log.Level != "info" && c.Log.Level != "warn" && c.Log.Level != "error":
		return bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	case c.Log.Format != "text" && c.Log.Format != "json":
		return bad("log.format", "must be text or json, got %q", c.Log.Format)
	}
	if err := c.validateLists(bad); err != nil {
		return err
	}
	if err := c.validateIntel(bad); err != nil {
		return err
	}
	if err := c.validateRerank(); err != nil {
		return err
	}
	if err := c.validateCluster(bad); err != nil {
		return err
	}
	return c.validateModels()
}

// validateLists checks each element of the list-valued keys.
func (c *Config) validateLists(bad func(key, format string, args ...any) error) error {
	for i, k := range c.Auth.Keys {
		scope, key, ok := strings.Cut(k, ":")
		if !ok || (scope != "read" && scope != "write") || len(key) < 16 {
			return bad(fmt.Sprintf("auth.keys[%d]", i), "must be \"read:KEY\" or \"write:KEY\" with a key of at least 16 characters")
		}
	}
	for i, o := range c.Server.CORSOrigins {
		if err := validOrigin(o); err != nil {
			return bad(fmt.Sprintf("server.cors_origins[%d]", i), "%v", err)
		}
	}
	return nil
}

// validOrigin accepts "*" or a browser origin: http or https, a host, an optional port, and
// nothing else (a browser's Origin header never carries a path, a query or a trailing slash).
func validOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL: %v", o, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q must start with http:// or https://", o)
	case u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q must be scheme://host[:port] only, as a browser sends it in Origin", o)
	}
	return nil
}

// validateRerank checks the default re-ranking modes: each must name one (none, qe, kr, qe+kr).
func (c Config) validateRerank() error {
	for _, k := range []struct{ key, v string }{
		{"index.rerank_search", c.Index.RerankSearch}, {"index.rerank_similar", c.Index.RerankSimilar},
	} {
		if m, err := rerank.ParseMode(k.v); err != nil || m == rerank.ModeDefault {
			return fmt.Errorf("%w: %s: must be none, qe, kr or qe+kr, got %q", ErrInvalid, k.key, k.v)
		}
	}
	return nil
}

// applyEnv walks the struct tree and sets every field whose LOOKALIKE_ variable is present.
func applyEnv(cfg *Config, environ []string) error {
	env := make(map[string]string)
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "LOOKALIKE_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	return walkEnv(reflect.ValueOf(cfg).Elem(), "LOOKALIKE", "", env)
}

func walkEnv(v reflect.Value, envPrefix, keyPrefix string, env map[string]string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		name := envPrefix + "_" + strings.ToUpper(tag)
		key := strings.TrimPrefix(keyPrefix+"."+tag, ".")
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeOf(time.Duration(0)) {
			if err := walkEnv(fv, name, key, env); err != nil {
				return err
			}
			continue
		}
		raw, ok := env[name]
		if !ok {
			continue
		}
		if err := setFromString(fv, raw); err != nil {
			return fmt.Errorf("%w: %s (from %s=%q): %v", ErrInvalid, key, name, raw, err)
		}
	}
	return nil
}

func setFromString(fv reflect.Value, raw string) error {
	if fv.Type() == reflect.TypeOf(time.Duration(0)) {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return err
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return err
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case reflect.Float64, reflect.Float32:
		x, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return err
		}
		fv.SetFloat(x)
	case reflect.Slice, reflect.Array:
		// Lists come as comma-separated values (LOOKALIKE_AUTH_KEYS=read:abc,write:def) or YAML flow.
		node := raw
		if !strings.HasPrefix(strings.TrimSpace(raw), "[") {
			parts := strings.Split(raw, ",")
			for i := range parts {
				parts[i] = strconv.Quote(strings.TrimSpace(parts[i]))
			}
			node = "[" + strings.Join(parts, ",") + "]"
			if fv.Kind() == reflect.Array {
				node = "[" + raw + "]"
			}
		}
		return yaml.Unmarshal([]byte(node), fv.Addr().Interface())
	default:
		return fmt.Errorf("unsupported kind %s", fv.Kind())
	}
	return nil
}

// validateIntel checks the catalog-intelligence thresholds.
func (c *Config) validateIntel(bad func(key, format string, args ...any) error) error {
	switch {
	case !(c.Intel.SimilarScore > 0 && c.Intel.SimilarScore <= c.Intel.NearDuplicateScore && c.Intel.NearDuplicateScore < 1):
		return bad("intel.similar_score", "must satisfy 0 < intel.similar_score <= intel.near_duplicate_score < 1, got %v and %v", c.Intel.SimilarScore, c.Intel.NearDuplicateScore)
	case c.Intel.PixelMatch < 0 || c.Intel.PixelMatch > 1:
		return bad("intel.pixel_match", "must be in 0..1, got %v", c.Intel.PixelMatch)
	case c.Intel.ChromaMatch < 0 || c.Intel.ChromaMatch > 1:
		return bad("intel.chroma_match", "must be in 0..1, got %v", c.Intel.ChromaMatch)
	case c.Intel.OnDuplicate != "allow" && c.Intel.OnDuplicate != "reject" && c.Intel.OnDuplicate != "merge":
		return bad("intel.on_duplicate", "must be allow, reject or merge, got %q", c.Intel.OnDuplicate)
	case c.Intel.DiversifyScore <= 0 || c.Intel.DiversifyScore > 1:
		return bad("intel.diversify_score", "must be in (0, 1], got %v", c.Intel.DiversifyScore)
	case c.Intel.DiversifyTier != "exact" && c.Intel.DiversifyTier != "near" && c.Intel.DiversifyTier != "similar":
		return bad("intel.diversify_tier", "must be exact, near or similar, got %q", c.Intel.DiversifyTier)
	case c.Intel.TagNeighbors < 1 || c.Intel.TagNeighbors > 200:
		return bad("intel.tag_neighbors", "must be in 1..200, got %d", c.Intel.TagNeighbors)
	case c.Intel.TagMinConfidence < 0 || c.Intel.TagMinConfidence > 1:
		return bad("intel.tag_min_confidence", "must be in 0..1, got %v", c.Intel.TagMinConfidence)
	case c.Intel.TrashRetention < time.Minute:
		return bad("intel.trash_retention", "must be >= 1m, got %v", c.Intel.TrashRetention)
	}
	return nil
}

// validateModels checks the model, the models: list (unique ids, valid specs) and the lifecycle settings.
func (c Config) validateModels() error {
	if err := c.Model.Validate(); err != nil {
		return fmt.Errorf("%w: model: %v", ErrInvalid, err)
	}
	ids := map[string]bool{c.Model.ID: true}
	for i, m := range c.Models {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("%w: models[%d]: %w", ErrInvalid, i, err)
		}
		if ids[m.ID] {
			return fmt.Errorf("%w: models[%d]: id %q is used twice", ErrInvalid, i, m.ID)
		}
		ids[m.ID] = true
	}
	if c.Lifecycle.Grace < 0 {
		return fmt.Errorf("%w: lifecycle.grace must not be negative", ErrInvalid)
	}
	if s := c.Lifecycle.CanaryShare; s < 0 || s > 1 || s != s {
		return fmt.Errorf("%w: lifecycle.canary_share must be in 0..1, got %v", ErrInvalid, s)
	}
	return nil
}
