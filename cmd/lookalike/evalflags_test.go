package main

import (
	"testing"

	"github.com/lookalike/lookalike/eval"
)

// TestEvalConfigsProject: --project and the compare key project= reach the configurations, and a
// malformed projection is refused before anything is embedded.
func TestEvalConfigsProject(t *testing.T) {
	cfgs, err := evalConfigs(eval.Config{Profile: "ms317", Project: "pw512"}, "none", "similar", "project=pw256/0.1; project=none; project=pca512; project=pca256")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pw512", "pw256/0.1", "none", "pca512", "pca256"}
	if len(cfgs) != len(want) {
		t.Fatalf("%d configurations, want %d", len(cfgs), len(want))
	}
	for i, c := range cfgs {
		if c.Project != want[i] {
			t.Errorf("config %d: project %q, want %q", i, c.Project, want[i])
		}
	}
	for _, bad := range []string{"project=pca", "project=pca512/0.5", "project=pw512/0", "project=pw512 profile=fast", "project=pca512 profile=fast"} {
		if _, err := evalConfigs(eval.Config{Profile: "ms317"}, "none", "similar", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
