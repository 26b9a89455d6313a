package embed

import (
	"cmp"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/internal/locate"
)

// testEngine returns an Engine on the default model, shared by the tests of one run (creating a
// session costs ~100ms), or skips when ONNX Runtime or the model is truly absent.
func testEngine(t testing.TB) *Engine {
	t.Helper()
	return plain.get(t, func() Options { return Options{} })
}

// sharedEngineOnce starts one engine for the tests of a run, on first use; TestMain closes it.
type sharedEngineOnce struct {
	once sync.Once
	eng  *Engine
	err  error
}

var plain sharedEngineOnce

func (s *sharedEngineOnce) get(t testing.TB, opts func() Options) *Engine {
	t.Helper()
	s.once.Do(func() { s.eng, s.err = New(context.Background(), testOptions(opts())) })
	if s.err != nil {
		skipIfAbsent(t, s.err)
		t.Fatalf("New: %v", s.err)
	}
	return s.eng
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, e := range []*Engine{plain.eng, regional.eng} {
		if e != nil {
			e.Close()
		}
	}
	os.Exit(code)
}

// testOptions fills in what cmd/lookalike resolves before calling New: the model and labels files
// on the model search path and the runtime library. A name that does not resolve is passed on as
// given, so that New reports it (and skipIfAbsent skips when the default model is missing).
func testOptions(o Options) Options {
	m := o.Model
	if m == (spec.Model{}) {
		m = spec.DefaultModel()
	}
	if model, labels, err := locate.ModelFiles(m); err == nil {
		o.ModelPath, o.LabelsPath = cmp.Or(o.ModelPath, model), cmp.Or(o.LabelsPath, labels)
	}
	o.RuntimeLibrary = cmp.Or(o.RuntimeLibrary, locate.RuntimeLibrary(""))
	return o
}

// skipIfAbsent skips only when the runtime library or the default model cannot be found at all.
func skipIfAbsent(t testing.TB, err error) {
	t.Helper()
	if _, _, lerr := locate.ModelFiles(spec.DefaultModel()); errors.Is(lerr, locate.ErrNotFound) {
		t.Skipf("model not installed (run scripts/setup): %v", lerr)
	}
	if errors.Is(err, ErrRuntime) {
		if _, statErr := os.Stat(locate.RuntimeLibrary("")); statErr != nil {
			t.Skipf("ONNX Runtime library not installed (run scripts/setup): %v", err)
		}
	}
}

func ukbench(t testing.TB) string {
	t.Helper()
	d, err := locate.Dir("ukbench", locate.DatasetDirs())
	if err != nil {
		t.Skipf("UKBench photos not installed: %v", err)
	}
	return d
}

func readPhoto(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ukbench(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
