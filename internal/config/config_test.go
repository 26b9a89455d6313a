package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
)

// The shipped file documents every key with its default: loading it must give exactly Default().
func TestShippedConfigEqualsDefaults(t *testing.T) {
	got, err := Load(filepath.Join("..", "..", "configs", "lookalike.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("configs/lookalike.yaml differs from Default():\n got %+v\nwant %+v", got, want)
	}
}

// The defaults are the libraries' own constants, so the server, the CLI and a library used with
// zero-valued options agree.
func TestDefaultsAreTheLibraries(t *testing.T) {
	d := Default()
	got := []any{d.Index.M, d.Index.EfConstruction, d.Index.EfSearch, d.Index.ExactThreshold, d.Index.SnapshotInterval,
		d.Limits.MaxPixels, d.Limits.MaxAspectRatio, d.Limits.ThumbnailSize, d.Limits.ThumbnailQuality}
	want := []any{index.DefaultM, index.DefaultEfConstruction, index.DefaultEfSearch, index.DefaultExactThreshold,
		index.DefaultSnapshotInterval, spec.DefaultMaxPixels, float64(spec.DefaultMaxAspectRatio), spec.DefaultThumbnailSize,
		spec.DefaultThumbnailQuality}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config defaults %v, library defaults %v", got, want)
	}
}

func TestEnvOverrides(t *testing.T) {
	cfg, err := Load("", []string{
		"LOOKALIKE_SERVER_ADDR=127.0.0.1:9999",
		"LOOKALIKE_EMBED_MAX_BATCH_WAIT=5ms",
		"LOOKALIKE_INDEX_EF_SEARCH=200",
		"LOOKALIKE_AUTH_KEYS=read:0123456789abcdef,write:fedcba9876543210",
		"LOOKALIKE_MODEL_MEAN=0.5,0.5,0.5",
		"LOOKALIKE_QUALITY_RECALL_SAMPLE_RATE=0.5",
		"UNRELATED=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Addr != "127.0.0.1:9999" || cfg.Embed.MaxBatchWait != 5*time.Millisecond || cfg.Index.EfSearch != 200 {
		t.Fatalf("overrides not applied: %+v %+v %+v", cfg.Server, cfg.Embed, cfg.Index)
	}
	if len(cfg.Auth.Keys) != 2 || cfg.Auth.Keys[1] != "write:fedcba9876543210" {
		t.Fatalf("auth keys = %q", cfg.Auth.Keys)
	}
	if cfg.Model.Mean != [3]float32{0.5, 0.5, 0.5} || cfg.Quality.RecallSampleRate != 0.5 {
		t.Fatalf("model.mean = %v, recall rate %v", cfg.Model.Mean, cfg.Quality.RecallSampleRate)
	}
}

// Every invalid value is reported with the key that holds it.
func TestValidationNamesTheKey(t *testing.T) {
	cases := []struct {
		name, yaml, env, wantKey string
	}{
		{"unknown key", "server:\n  adress: x\n", "", "adress"},
		{"bad device", "embed:\n  device: tpu\n", "", "embed.device"},
		{"bad m", "index:\n  m: 1\n", "", "index.m"},
		{"bad k", "limits:\n  default_k: 5000\n", "", "limits.default_k"},
		{"max_k beyond the index's window", "limits:\n  max_k: 1001\n", "", "limits.max_k"},
		{"max_k zero", "", "LOOKALIKE_LIMITS_MAX_K=0", "limits.max_k"},
		{"ef_search beyond MaxEf", "index:\n  ef_search: 10000\n", "", "index.ef_search"},
		{"unknown rerank mode", "index:\n  rerank_search: k-reciprocal\n", "", "index.rerank_search"},
		{"empty rerank mode env", "", "LOOKALIKE_INDEX_RERANK_SIMILAR=", "index.rerank_similar"},
		{"unknown compression", "index:\n  compression: pq\n", "", "index.compression"},
		{"negative build workers", "", "LOOKALIKE_INDEX_BUILD_WORKERS=-1", "index.build_workers"},
		{"bad duration env", "", "LOOKALIKE_SERVER_QUEUE_WAIT=soon", "server.queue_wait"},
		{"bad int env", "", "LOOKALIKE_INDEX_M=many", "index.m"},
		{"short key", "auth:\n  keys: [\"read:short\"]\n", "", "auth.keys[0]"},
		{"bad log level", "log:\n  level: loud\n", "", "log.level"},
		{"bad demo", "demo:\n  mode: maybe\n", "", "demo.mode"},
		{"bad model layout", "model:\n  layout: CHWN\n", "", "model"},
		{"bad aspect ratio", "limits:\n  max_aspect_ratio: 0.5\n", "", "limits.max_aspect_ratio"},
		{"cors origin with a path", "server:\n  cors_origins: [\"https://shop.example/\"]\n", "", "server.cors_origins[0]"},
		{"canary share over 1", "lifecycle:\n  canary_share: 1.5\n", "", "lifecycle.canary_share"},
		{"negative canary share", "", "LOOKALIKE_LIFECYCLE_CANARY_SHARE=-0.1", "lifecycle.canary_share"},
		{"cors origin without scheme", "", "LOOKALIKE_SERVER_CORS_ORIGINS=https://a.example,shop.example", "server.cors_origins[1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var env []string
			if tc.env != "" {
				env = []string{tc.env}
			}
			_, err := Load(path, env)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("want ErrInvalid, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantKey) {
				t.Fatalf("error %q does not name %q", err, tc.wantKey)
			}
		})
	}
}

func TestEmptyFileMeansDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatal("empty file should give the defaults")
	}
}
