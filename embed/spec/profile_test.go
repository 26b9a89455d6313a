package spec

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestParseProfile(t *testing.T) {
	tests := []struct {
		in, name string
		scales   []int
		err      string
	}{
		{in: "", name: "fast"},
		{in: "fast", name: "fast"},
		{in: " MS448 ", name: "ms448", scales: []int{448, 317, 224}},
		{in: "ms317", name: "ms317", scales: []int{317, 224}},
		{in: "rmac:224,317,448", name: "ms448", scales: []int{448, 317, 224}}, // a built-in by another name
		{in: "rmac:448", name: "rmac:448", scales: []int{448}},
		{in: "rmac:320,640", name: "rmac:640,320", scales: []int{640, 320}},
		{in: "sharp", err: "want fast"},
		{in: "rmac:", err: "must be an integer"},
		{in: "rmac:32", err: "64..1024"},
		{in: "rmac:2000", err: "64..1024"},
		{in: "rmac:448,448", err: "repeated"},
		{in: "rmac:100,200,300,400,500", err: "at most 4"},
	}
	for _, tc := range tests {
		p, err := ParseProfile(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseProfile(%q) = %+v, %v; want an error with %q", tc.in, p, err, tc.err)
			}
			continue
		}
		if err != nil || p.Name != tc.name || !slices.Equal(p.Scales, tc.scales) || p.Regional() != (tc.scales != nil) {
			t.Errorf("ParseProfile(%q) = %+v, %v; want %s %v", tc.in, p, err, tc.name, tc.scales)
		}
	}
}

// TestProfileFingerprint: every profile names other vectors; fast keeps the pre-profile
// fingerprint; the fingerprint covers the model bytes and the scales.
func TestProfileFingerprint(t *testing.T) {
	m := DefaultModel()
	m.FeatureMapTensor = DefaultFeatureMapTensor
	sha := strings.Repeat("ab", 32)
	seen := map[string]string{}
	for _, name := range append(ProfileNames(), "rmac:448", "rmac:640,320") {
		p, _ := ParseProfile(name)
		fp := m.ProfileFingerprint(sha, p)
		if prev, ok := seen[fp]; ok {
			t.Errorf("%s and %s share %s", prev, name, fp)
		}
		seen[fp] = name
		if got := ProfileOfFingerprint(fp); got != p.Name {
			t.Errorf("ProfileOfFingerprint(%s) = %s, want %s", fp, got, p.Name)
		}
	}
	fast, _ := ParseProfile("fast")
	if m.ProfileFingerprint(sha, fast) != m.Fingerprint(sha) {
		t.Errorf("fast changed the fingerprint")
	}
	ms448, _ := ParseProfile("ms448")
	if m.ProfileFingerprint(sha, ms448) == m.ProfileFingerprint(strings.Repeat("cd", 32), ms448) {
		t.Errorf("the model's checksum is not in the ms448 fingerprint")
	}
	if err := DefaultModel().CheckProfile(ms448); err == nil {
		t.Errorf("a regional profile without a feature map tensor passed CheckProfile")
	}
}

// TestSplitProjection: a projection's name joins a regional fingerprint and splits off again;
// the profile a projected fingerprint claims is its base's.
func TestSplitProjection(t *testing.T) {
	m := DefaultModel()
	m.FeatureMapTensor = DefaultFeatureMapTensor
	ms317, _ := ParseProfile("ms317")
	rmac, _ := ParseProfile("rmac:448,224")
	for _, tc := range []struct{ base, projection, profile string }{
		{m.ProfileFingerprint(strings.Repeat("ab", 32), ms317), "pw512:1a2b3c4d", "ms317"},
		{m.ProfileFingerprint(strings.Repeat("ab", 32), rmac), "pw16:00ff00ff", "rmac:448,224"},
		{m.ProfileFingerprint(strings.Repeat("ab", 32), ms317), "", "ms317"},
		{m.Fingerprint(strings.Repeat("ab", 32)), "", ProfileFast},
	} {
		fp := WithProjection(tc.base, tc.projection)
		if base, p := SplitProjection(fp); base != tc.base || p != tc.projection {
			t.Errorf("SplitProjection(%s) = %s, %s", fp, base, p)
		}
		if got := ProfileOfFingerprint(fp); got != tc.profile {
			t.Errorf("ProfileOfFingerprint(%s) = %s, want %s", fp, got, tc.profile)
		}
		if tc.projection != "" && fp == tc.base {
			t.Errorf("the projection %s left the fingerprint %s as it was", tc.projection, fp)
		}
	}
}

func TestThreshold(t *testing.T) {
	m := DefaultModel()
	m.FeatureMapTensor = DefaultFeatureMapTensor
	sha := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		profile string
		in, out float64
	}{
		{"fast", 0.8, 0.8},
		{"ms317", 0.8, 0.88},
		{"ms317", 0.95, 0.97},
		{"ms448", 0.75, 0.875},
		{"ms448", 1, 1},
	} {
		p, _ := ParseProfile(tc.profile)
		if got := p.Threshold(tc.in); math.Abs(got-tc.out) > 1e-9 {
			t.Errorf("%s: Threshold(%g) = %g, want %g", tc.profile, tc.in, got, tc.out)
		}
		if got := ThresholdFor(m.ProfileFingerprint(sha, p), tc.in); math.Abs(got-tc.out) > 1e-9 {
			t.Errorf("%s: ThresholdFor = %g, want %g", tc.profile, got, tc.out)
		}
	}
	if got := ThresholdFor("other-000000000000@nonsense", 0.8); got != 0.8 {
		t.Errorf("unknown profile: %g, want the threshold itself", got)
	}
}
