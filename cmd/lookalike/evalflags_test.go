package main

import (
	"strings"
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

// TestEvalConfigsKRScale: the compare key kr-scale= reaches the configurations (and their labels),
// and an out-of-range scale is refused before anything is embedded.
func TestEvalConfigsKRScale(t *testing.T) {
	cfgs, err := evalConfigs(eval.Config{Profile: "ms448"}, "qe+kr", "similar", "kr-scale=1024; rerank=kr kr-scale=8; kr-scale=none; kr-scale=0; kr-scale=default")
	if err != nil {
		t.Fatal(err)
	}
	want := []int{0, 1024, 8, -1, -1, 0}
	if len(cfgs) != len(want) {
		t.Fatalf("%d configurations, want %d", len(cfgs), len(want))
	}
	for i, c := range cfgs {
		if c.KRScale != want[i] {
			t.Errorf("config %d: kr-scale %d, want %d", i, c.KRScale, want[i])
		}
	}
	if l := cfgs[1].String(); !strings.Contains(l, "kr-scale=1024") {
		t.Errorf("label %q lacks the scale", l)
	}
	if l := cfgs[3].String(); !strings.Contains(l, "kr-scale=none") {
		t.Errorf("label %q lacks the scale", l)
	}
	for _, bad := range []string{"kr-scale=-1", "kr-scale=-2", "kr-scale=99999", "kr-scale=x"} {
		if _, err := evalConfigs(eval.Config{Profile: "ms448"}, "qe+kr", "similar", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
