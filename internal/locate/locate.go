// Package locate finds the files Lookalike needs but never commits — the ONNX Runtime shared
// library, model files and datasets — on search paths shared by the CLI, the server and the tests.
// It reads the environment (the variables below); the libraries it serves do not: cmd/lookalike
// resolves paths here and hands embed the results.
//
// Search order for a model file: $LOOKALIKE_MODEL_DIR, then for the working directory and each of
// its ancestors (up to four levels): DIR/models and DIR/../shared/models. Walking up lets tests, which
// run inside a package folder, find what scripts/setup put beside the repository root.
//
// Search order for ONNX Runtime: $ONNXRUNTIME_LIB, then .cache/onnxruntime/<version>/libonnxruntime.so.1
// under the working directory, the executable's folder and their ancestors, then the system loader.
package locate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lookalike/lookalike/embed/spec"
)

// ORTVersion is the ONNX Runtime release scripts/setup fetches and caches.
const ORTVersion = "1.30.0"

// ErrNotFound is returned when no candidate path holds the file.
var ErrNotFound = errors.New("not found")

// ModelDirs returns the folders searched for model files, in order, most specific first.
// Explicit entries (e.g. from the config) are searched before the defaults.
func ModelDirs(explicit ...string) []string {
	return searchDirs("LOOKALIKE_MODEL_DIR", "models", explicit)
}

// DatasetDirs returns the folders searched for benchmark datasets (../shared/datasets and friends).
func DatasetDirs(explicit ...string) []string {
	return searchDirs("LOOKALIKE_DATASET_DIR", "datasets", explicit)
}

// searchDirs is explicit, then $envVar, then sub and ../shared/sub beside the working directory
// and up to four of its ancestors.
func searchDirs(envVar, sub string, explicit []string) []string {
	var dirs []string
	for _, d := range explicit {
		if d = expand(d); d != "" {
			dirs = append(dirs, d)
		}
	}
	if d := os.Getenv(envVar); d != "" {
		dirs = append(dirs, d)
	}
	for _, a := range ancestors(cwd(), 4) {
		dirs = append(dirs, filepath.Join(a, sub), filepath.Join(a, "..", "shared", sub))
	}
	return dedupe(dirs)
}

// ModelFiles resolves m's model file and, when m has a logits output and a labels file, its labels
// file ("" otherwise) on ModelDirs(explicitDirs...): the paths embed.Options wants.
func ModelFiles(m spec.Model, explicitDirs ...string) (model, labels string, err error) {
	dirs := ModelDirs(explicitDirs...)
	if model, err = File(m.File, dirs); err != nil {
		return "", "", fmt.Errorf("model file: %w", err)
	}
	if m.LabelsFile != "" && m.LogitsOutput != "" {
		if labels, err = File(m.LabelsFile, dirs); err != nil {
			return "", "", fmt.Errorf("labels: %w", err)
		}
	}
	return model, labels, nil
}

// File returns the first dir/name that exists as a regular file.
func File(name string, dirs []string) (string, error) {
	if filepath.IsAbs(name) {
		if isFile(name) {
			return name, nil
		}
		return "", fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if isFile(p) {
			return filepath.Clean(p), nil
		}
	}
	return "", fmt.Errorf("%s (searched %s): %w", name, strings.Join(dirs, ", "), ErrNotFound)
}

// Dir returns the first dir/name that exists as a folder.
func Dir(name string, dirs []string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return filepath.Clean(p), nil
		}
	}
	return "", fmt.Errorf("folder %s (searched %s): %w", name, strings.Join(dirs, ", "), ErrNotFound)
}

// RuntimeLibrary returns the path of the ONNX Runtime shared library to load. explicit (from the
// config) wins over $ONNXRUNTIME_LIB, which wins over the cache scripts/setup fills. When nothing is
// found it returns the bare soname so the system loader gets the last word.
func RuntimeLibrary(explicit string) string {
	if explicit = expand(explicit); explicit != "" {
		return explicit
	}
	if p := os.Getenv("ONNXRUNTIME_LIB"); p != "" {
		return p
	}
	rel := filepath.Join(".cache", "onnxruntime", ORTVersion, "libonnxruntime.so.1")
	var bases []string
	bases = append(bases, ancestors(cwd(), 4)...)
	if exe, err := os.Executable(); err == nil {
		bases = append(bases, ancestors(filepath.Dir(exe), 3)...)
	}
	for _, b := range bases {
		if p := filepath.Join(b, rel); isFile(p) {
			return p
		}
	}
	return "libonnxruntime.so.1"
}

func expand(p string) string { return os.ExpandEnv(strings.TrimSpace(p)) }

func cwd() string {
	d, err := os.Getwd()
	if err != nil {
		return "."
	}
	return d
}

func ancestors(dir string, levels int) []string {
	out := []string{dir}
	for i := 0; i < levels; i++ {
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		out = append(out, parent)
		dir = parent
	}
	return out
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func dedupe(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0]
	for _, d := range in {
		c := filepath.Clean(d)
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}
