package main

import (
	"strings"
	"testing"
)

// TestCLITuneUsage: options out of range and stray arguments are usage errors (exit 2) before
// anything is opened.
func TestCLITuneUsage(t *testing.T) {
	for _, args := range [][]string{
		{"tune", "--dims", "-1"},
		{"tune", "--power", "2"},
		{"tune", "--power", "-0.1"},
		{"tune", "--sample", "0"},
		{"tune", "photo.jpg"},
	} {
		code, _, errOut := runCLI(t, append(args, "--data", t.TempDir())...)
		if code != 2 || !strings.Contains(errOut, "lookalike tune") {
			t.Errorf("%v: exit %d, %s", args, code, errOut)
		}
	}
	if code, out, _ := runCLI(t, "help"); code != 0 || !strings.Contains(out, "tune") {
		t.Errorf("the command list does not name tune: %s", out)
	}
}
