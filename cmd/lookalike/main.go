// Command lookalike is the Lookalike visual search service and its command-line tools: embed photos,
// build and query collections, serve the REST API and web UI, and benchmark all of it.
//
// It alone reads flags, the config file and the environment: LOOKALIKE_* overrides through
// internal/config (which is handed os.Environ and reads nothing itself), and the search paths of
// uncommitted files through internal/locate (ONNXRUNTIME_LIB, LOOKALIKE_MODEL_DIR, ...), which only
// this command calls. The packages it wires receive plain, validated structs and resolved paths.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/lookalike/lookalike/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

var commands = []command{
	{"version", "print the version", runVersion},
	{"embed", "embed photos: model, dims, vector stats, top-5 labels (--json for vectors)", runEmbed},
	{"model", "model inspect FILE | model export SRC DST TENSOR...", runModel},
	{"index", "add photos, folders or a CSV/JSONL manifest to a collection", runIndex},
	{"search", "find the items most similar to a photo", runSearch},
	{"similar", "find the items most similar to an item id", runSimilar},
	{"delete", "delete items by id", runDelete},
	{"reembed", "embed a collection again from its source renditions (--into, --profile)", runReembed},
	{"rebuild", "rebuild a collection into its next generation with another model or profile (--switch)", runRebuild},
	{"tune", "learn a projection from a collection's own photos and rebuild it with it (--dims, --switch)", runTune},
	{"stats", "collections, sizes, model fingerprint, graph levels", runStats},
	{"serve", "run the HTTP API and web UI", runServe},
	{"healthcheck", "exit 0 when the local server is ready (GET /readyz): the container's HEALTHCHECK", runHealthcheck},
	{"restore", "replace the data file with a backup from GET /v1/admin/backup", runRestore},
	{"bench", "bench embed DIR | bench search [--base B.fvecs --queries Q.fvecs]", runBench},
	{"eval", "measure retrieval quality: ukbench, oxford5k, fashion-mnist or your own groups", runEval},
	{"tag", "suggest metadata for a photo or item (--all: tag a collection; tag eval: measure)", runTag},
	{"dupes", "duplicate clusters of a collection (dupes calibrate: measure the tiers)", runDupes},
}

// cliEnv carries what every subcommand shares: output streams and the global flags' values.
type cliEnv struct {
	stdout, stderr io.Writer
	configPath     string
	environ        []string
}

// errUsage marks an error caused by how the command was called: it exits with status 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) int {
	env := &cliEnv{stdout: stdout, stderr: stderr, environ: environ}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "lookalike %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "lookalike %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "lookalike: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Lookalike — visual search: photos in, similar photos out.")
	fmt.Fprintln(w, "\nUsage: lookalike COMMAND [flags] [args]\n\nCommands:")
	sorted := append([]command(nil), commands...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEvery command takes --config FILE (default: configs/lookalike.yaml when present).")
	fmt.Fprintln(w, "Run 'lookalike COMMAND -h' for its flags.")
}

// newFlags makes a flag set with the flags every command shares.
func newFlags(env *cliEnv, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("lookalike "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.StringVar(&env.configPath, "config", "", "config file (default configs/lookalike.yaml when present)")
	return fs
}

// parseInterleaved lets flags follow positional arguments (lookalike embed a.jpg b.jpg --json),
// which the standard flag package stops at.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// loadConfig reads the config file (explicit, or configs/lookalike.yaml when present) plus the
// environment.
func (env *cliEnv) loadConfig() (config.Config, error) {
	path := env.configPath
	if path == "" {
		if _, err := os.Stat("configs/lookalike.yaml"); err == nil {
			path = "configs/lookalike.yaml"
		}
	}
	return config.Load(path, env.environ)
}

func (env *cliEnv) logger(cfg config.Config) *slog.Logger {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(env.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(env.stderr, opts))
}

func runVersion(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "version")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "lookalike %s\n", version)
	return nil
}

func requireArgs(args []string, n int, what string) error {
	if len(args) < n {
		return fmt.Errorf("%w: expected %s", errUsage, what)
	}
	return nil
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}
