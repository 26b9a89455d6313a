package embed

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/embed/spec"
)

// regionalEngine is an engine with the feature map exposed (so it serves regional profiles), shared
// by the tests of one run.
func regionalEngine(t testing.TB) *Engine {
	t.Helper()
	return regional.get(t, func() Options {
		ms := spec.DefaultModel()
		ms.FeatureMapTensor = spec.DefaultFeatureMapTensor
		return Options{Model: ms}
	})
}

var regional sharedEngineOnce

// TestScaledSize is the q@scale rule: the whole photo's long side becomes the scale, and a crop
// keeps the factor of its photo instead of being blown up to the scale itself.
func TestScaledSize(t *testing.T) {
	tests := []struct {
		name               string
		cw, ch, long, s    int
		wantW, wantH       int
		wantF              float64
		wantShortAtLeast32 bool
	}{
		{name: "whole landscape photo", cw: 640, ch: 480, long: 640, s: 448, wantW: 448, wantH: 336, wantF: 0.7},
		{name: "whole portrait photo", cw: 480, ch: 640, long: 640, s: 224, wantW: 168, wantH: 224, wantF: 0.35},
		{name: "crop keeps the photo's factor", cw: 200, ch: 100, long: 640, s: 448, wantW: 140, wantH: 70, wantF: 0.7},
		{name: "crop of a small photo is enlarged alike", cw: 100, ch: 80, long: 200, s: 448, wantW: 224, wantH: 179, wantF: 2.24},
		{name: "thin crop: short side raised to 32", cw: 400, ch: 20, long: 640, s: 224, wantW: 640, wantH: 32, wantF: 1.6},
		{name: "tiny photo enlarged to the scale", cw: 28, ch: 28, long: 28, s: 448, wantW: 448, wantH: 448, wantF: 16},
		{name: "extreme banner: long side capped at 4x the scale", cw: 6400, ch: 100, long: 6400, s: 224, wantW: 896, wantH: 14, wantF: 0.14},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, h, f := scaledSize(tc.cw, tc.ch, tc.long, tc.s)
			if w != tc.wantW || h != tc.wantH || math.Abs(f-tc.wantF) > 1e-9 {
				t.Errorf("scaledSize(%d, %d, %d, %d) = %d x %d (factor %g), want %d x %d (factor %g)",
					tc.cw, tc.ch, tc.long, tc.s, w, h, f, tc.wantW, tc.wantH, tc.wantF)
			}
		})
	}
}

// TestCropInputSize: the engine feeds a query crop at the photo's factor (q@scale), for every
// scale of the profile, from a JPEG decoded once at a reduced DCT scale.
func TestCropInputSize(t *testing.T) {
	e := regionalEngine(t)
	p, err := spec.ParseProfile("ms448")
	if err != nil {
		t.Fatal(err)
	}
	photo := readPhoto(t, "ukbench00100.jpg") // 640x480
	for _, tc := range []struct {
		name string
		crop *Rect
		want [][2]int // w, h per scale
	}{
		{"whole photo", nil, [][2]int{{448, 336}, {317, 238}, {224, 168}}},
		{"crop", &Rect{X: 100, Y: 40, W: 320, H: 200}, [][2]int{{224, 140}, {159, 99}, {112, 70}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out Embedding
			var jobs []scaleJob
			e.prepareScales(Image{Data: photo, Crop: tc.crop}, p, &out, func(_ int, sj scaleJob) bool {
				jobs = append(jobs, sj)
				return true
			})
			if out.Err != nil || len(jobs) != len(p.Scales) {
				t.Fatalf("%d scales, error %v", len(jobs), out.Err)
			}
			for i, j := range jobs {
				if j.w != tc.want[i][0] || j.h != tc.want[i][1] {
					t.Errorf("scale %d: input %dx%d, want %dx%d", p.Scales[i], j.w, j.h, tc.want[i][0], tc.want[i][1])
				}
				if len(j.tensor) != 3*j.w*j.h {
					t.Errorf("tensor of %d values for %dx%d", len(j.tensor), j.w, j.h)
				}
				putFloats(j.tensor)
			}
		})
	}
}

// TestRegionalProfiles: every profile embeds, regional vectors are unit length and differ from the
// fast one, and a crop covering the whole photo is the photo.
func TestRegionalProfiles(t *testing.T) {
	e := regionalEngine(t)
	photo := readPhoto(t, "ukbench00100.jpg")
	fast := embedOne(t, e, Image{Data: photo, Profile: spec.ProfileFast})
	for _, name := range []string{"ms317", "ms448", "rmac:448"} {
		t.Run(name, func(t *testing.T) {
			r := embedOne(t, e, Image{Data: photo, Profile: name})
			var n float64
			for _, x := range r.Vector {
				n += float64(x) * float64(x)
			}
			if len(r.Vector) != 1280 || math.Abs(n-1) > 1e-4 {
				t.Fatalf("vector of %d values, norm² %g", len(r.Vector), n)
			}
			if c := cosine(r.Vector, fast.Vector); c > 0.99 {
				t.Errorf("cosine %.4f to the fast vector: regional pooling did not happen", c)
			}
			if len(r.Labels) == 0 || r.FeatureMap != nil {
				t.Errorf("labels %v, feature map %d values: want labels and no map", r.Labels, len(r.FeatureMap))
			}
			whole := embedOne(t, e, Image{Data: photo, Profile: name, Crop: &Rect{W: 640, H: 480}})
			if c := cosine(whole.Vector, r.Vector); c < 0.99999 {
				t.Errorf("whole-photo crop: cosine %.6f to the photo", c)
			}
			// A second photo of the same object scores higher than a photo of another object.
			same := embedOne(t, e, Image{Data: readPhoto(t, "ukbench00101.jpg"), Profile: name})
			other := embedOne(t, e, Image{Data: readPhoto(t, "ukbench00004.jpg"), Profile: name})
			if cs, co := cosine(r.Vector, same.Vector), cosine(r.Vector, other.Vector); cs <= co {
				t.Errorf("same object %.3f <= other object %.3f", cs, co)
			}
		})
	}
}

// TestFastProfileUnchanged: exposing the feature map (which makes the input size symbolic) leaves
// the fast profile's vectors and fingerprint as they were.
func TestFastProfileUnchanged(t *testing.T) {
	plain, reg := testEngine(t), regionalEngine(t)
	if plain.Info().Fingerprint != reg.Info().Fingerprint {
		t.Errorf("fingerprints %s and %s", plain.Info().Fingerprint, reg.Info().Fingerprint)
	}
	for _, name := range []string{"ukbench00100.jpg", "ukbench00033.jpg"} {
		photo := Image{Data: readPhoto(t, name)}
		a, b := embedOne(t, plain, photo), embedOne(t, reg, photo)
		if c := cosine(a.Vector, b.Vector); c < 0.99999 {
			t.Errorf("%s: cosine %.6f between the fixed-size and the symbolic-size graph", name, c)
		}
	}
}

// TestProfileFingerprints: each profile names its vectors, an engine recognises the fingerprints it
// makes and refuses another profile's, and unknown or unservable profiles are errors.
func TestProfileFingerprints(t *testing.T) {
	reg, plain := regionalEngine(t).Info(), testEngine(t).Info()
	seen := map[string]string{}
	for _, p := range reg.Profiles {
		if prev, dup := seen[p.Fingerprint]; dup {
			t.Errorf("profiles %s and %s share fingerprint %s", prev, p.Name, p.Fingerprint)
		}
		seen[p.Fingerprint] = p.Name
		if got, ok := reg.ProfileFor(p.Fingerprint); !ok || got != p.Name {
			t.Errorf("ProfileFor(%s) = %q, %v; want %s", p.Fingerprint, got, ok, p.Name)
		}
		if p.Name != spec.ProfileFast && !strings.HasSuffix(p.Fingerprint, "@"+p.Name) {
			t.Errorf("%s: fingerprint %s does not name the profile", p.Name, p.Fingerprint)
		}
	}
	if len(reg.Profiles) != len(spec.ProfileNames()) {
		t.Errorf("profiles %+v, want all of %v", reg.Profiles, spec.ProfileNames())
	}
	_, ms448, err := reg.ProfileFingerprint("ms448")
	if err != nil {
		t.Fatal(err)
	}
	// Another model (checksum) under the same profile name is refused, as is a forged suffix.
	forged := spec.DefaultModel()
	forged.FeatureMapTensor = spec.DefaultFeatureMapTensor
	for _, fp := range []string{
		forged.ProfileFingerprint(strings.Repeat("0", 64), spec.Profile{Name: "ms448", Scales: []int{448, 317, 224}, Levels: 3}),
		reg.Fingerprint + "@ms448",
		"mnv2i8-000000000000@nonsense",
	} {
		if name, ok := reg.ProfileFor(fp); ok {
			t.Errorf("ProfileFor(%s) = %s, want refusal", fp, name)
		}
	}
	// Without a feature map an engine serves only fast, and refuses regional images per image.
	if _, ok := plain.ProfileFor(ms448); ok {
		t.Errorf("engine without a feature map accepts %s", ms448)
	}
	if _, _, err := plain.ProfileFingerprint("ms448"); !errors.Is(err, ErrProfile) {
		t.Errorf("ProfileFingerprint(ms448) without feature map: %v, want ErrProfile", err)
	}
	res, err := testEngine(t).Embed(context.Background(), []Image{
		{Data: readPhoto(t, "ukbench00100.jpg"), Profile: "ms448"},
		{Data: readPhoto(t, "ukbench00100.jpg"), Profile: "bogus"},
		{Data: readPhoto(t, "ukbench00100.jpg")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, ErrProfile) || !errors.Is(res[1].Err, ErrProfile) || res[2].Err != nil {
		t.Errorf("errors %v, %v, %v; want ErrProfile, ErrProfile, nil", res[0].Err, res[1].Err, res[2].Err)
	}
}

// TestDefaultProfile: Options.Profile picks the vectors Embed makes by default and the fingerprint
// Info reports.
func TestDefaultProfile(t *testing.T) {
	ms := spec.DefaultModel()
	ms.FeatureMapTensor = spec.DefaultFeatureMapTensor
	e, err := New(context.Background(), testOptions(Options{Model: ms, Profile: "ms317", Workers: 1}))
	if err != nil {
		skipIfAbsent(t, err)
		t.Fatal(err)
	}
	defer e.Close()
	info := e.Info()
	if _, want, _ := regionalEngine(t).Info().ProfileFingerprint("ms317"); info.Profile != "ms317" || info.Fingerprint != want {
		t.Errorf("profile %s fingerprint %s, want ms317 %s", info.Profile, info.Fingerprint, want)
	}
	photo := readPhoto(t, "ukbench00100.jpg")
	a := embedOne(t, e, Image{Data: photo})
	b := embedOne(t, regionalEngine(t), Image{Data: photo, Profile: "ms317"})
	if c := cosine(a.Vector, b.Vector); c < 0.99999 {
		t.Errorf("default ms317 vs explicit ms317: cosine %.6f", c)
	}
	if _, err := New(context.Background(), testOptions(Options{Profile: "ms448"})); !errors.Is(err, ErrProfile) {
		t.Errorf("regional default without a feature map: %v, want ErrProfile", err)
	}
}
