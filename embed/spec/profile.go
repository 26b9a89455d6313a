package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Profile is how a photo becomes one vector: the input sizes the model sees and how its feature map
// is pooled. A collection's profile is part of its fingerprint, so vectors of two profiles are never
// mixed. The zero value is not a profile: use ParseProfile.
type Profile struct {
	// Name is the canonical name: "fast", a built-in ("ms317", "ms448") or "rmac:S1,S2,...".
	Name string `json:"name"`
	// Scales are the long sides (pixels) the whole photo is resized to, largest first; nil for the
	// fast profile (the model spec's own resize and crop).
	Scales []int `json:"scales,omitempty"`
	// Levels is the number of R-MAC levels (Tolias et al. 2016); 0 for the fast profile.
	Levels int `json:"levels,omitempty"`
	// ScoreScale maps cosine thresholds set for the fast profile onto this profile's scores (see
	// Threshold); 0 means 1 (fast). Not part of the fingerprint: it changes no vector.
	ScoreScale float64 `json:"score_scale,omitempty"`
}

// Profile names and bounds.
const (
	// ProfileFast is the model's own pooled embedding of the spec's crop (224 centre crop for the
	// default model): the cheapest profile and the fingerprint collections had before profiles.
	ProfileFast = "fast"
	// DefaultProfile is the profile of new collections in the shipped configuration
	// (model.profile): chosen by measurement as the best quality whose image search stays within
	// 25 ms p95 at 10 000 items, one request in flight, on 2 cores (docs/quality.md). It pools the
	// feature map, so it needs Model.FeatureMapTensor; the zero value of Model.Profile is fast.
	DefaultProfile = "ms317"
	// RMACLevels is the literature's default (Tolias et al. 2016: 3 levels, 40 % overlap).
	RMACLevels = 3
	// MinScale and MaxScale bound a profile's long sides: below 64 px the 32-px-stride map has
	// one or two cells; above 1024 px inference costs 20x the fast profile.
	MinScale  = 64
	MaxScale  = 1024
	MaxScales = 4
	// MinShortSide is the least short side of a resized photo (one cell of a stride-32 map), unless
	// that would make the long side exceed MaxLongFactor times the scale.
	MinShortSide  = 32
	MaxLongFactor = 4
)

// builtinProfiles are the regional profiles measured in docs/quality.md: R-MAC over the photo at
// several long sides, each 1/sqrt(2) of the previous one.
//
// Their ScoreScale is 1 - cosine of a photo's best match when it has no counterpart (UKBench photos
// searched among the Oxford photos, no labels used: median 0.646 fast, 0.787 ms317, 0.824 ms448)
// over fast's: R-MAC vectors of unrelated photos are closer than pooled ones, so thresholds move.
var builtinProfiles = []Profile{
	{Name: "ms317", Scales: []int{317, 224}, Levels: RMACLevels, ScoreScale: 0.60},
	{Name: "ms448", Scales: []int{448, 317, 224}, Levels: RMACLevels, ScoreScale: 0.50},
}

// customScoreScale is the ScoreScale of rmac:... profiles, not measured: the built-ins' by the
// largest scale.
func customScoreScale(largest int) float64 {
	if largest <= 317 {
		return 0.60
	}
	return 0.50
}

// ProfileNames lists the named profiles, cheapest first.
func ProfileNames() []string {
	out := []string{ProfileFast}
	for _, p := range builtinProfiles {
		out = append(out, p.Name)
	}
	return out
}

// ParseProfile resolves a profile name: "fast", a built-in name, or "rmac:S1,S2,..." (1 to
// MaxScales long sides in MinScale..MaxScale, e.g. "rmac:448" or "rmac:640,453,320"). "" means
// fast, which every model serves. An explicit form equal to a built-in gets the built-in's name.
func ParseProfile(name string) (Profile, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" || name == ProfileFast {
		return Profile{Name: ProfileFast}, nil
	}
	for _, p := range builtinProfiles {
		if p.Name == name {
			return p.clone(), nil
		}
	}
	list, ok := strings.CutPrefix(name, "rmac:")
	if !ok {
		return Profile{}, fmt.Errorf("profile %q: want %s or rmac:S1,S2,... (long sides in pixels)", name, strings.Join(ProfileNames(), ", "))
	}
	p := Profile{Levels: RMACLevels}
	for _, f := range strings.Split(list, ",") {
		s, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || s < MinScale || s > MaxScale {
			return Profile{}, fmt.Errorf("profile %q: scale %q must be an integer in %d..%d", name, f, MinScale, MaxScale)
		}
		p.Scales = append(p.Scales, s)
	}
	if len(p.Scales) > MaxScales {
		return Profile{}, fmt.Errorf("profile %q: at most %d scales", name, MaxScales)
	}
	slices.SortFunc(p.Scales, func(a, b int) int { return b - a })
	if len(slices.Compact(slices.Clone(p.Scales))) != len(p.Scales) {
		return Profile{}, fmt.Errorf("profile %q: a scale is repeated", name)
	}
	for _, b := range builtinProfiles {
		if slices.Equal(b.Scales, p.Scales) && b.Levels == p.Levels {
			return b.clone(), nil
		}
	}
	parts := make([]string, len(p.Scales))
	for i, s := range p.Scales {
		parts[i] = strconv.Itoa(s)
	}
	p.Name = "rmac:" + strings.Join(parts, ",")
	p.ScoreScale = customScoreScale(p.Scales[0])
	return p, nil
}

// Threshold maps a cosine threshold calibrated on fast vectors (the duplicate tiers, diversity,
// quality.min_score) onto this profile's: 1 - (1-t)*ScoreScale, so that "as far as an unrelated
// photo typically is" means the same under every profile. Fast (and ScoreScale 0) keeps t.
func (p Profile) Threshold(t float64) float64 {
	if !p.Regional() || p.ScoreScale <= 0 {
		return t
	}
	return 1 - (1-t)*p.ScoreScale
}

// ThresholdFor is Threshold for the profile a fingerprint names (t itself when it names none
// this package knows).
func ThresholdFor(fingerprint string, t float64) float64 {
	p, err := ParseProfile(ProfileOfFingerprint(fingerprint))
	if err != nil {
		return t
	}
	return p.Threshold(t)
}

func (p Profile) clone() Profile {
	p.Scales = slices.Clone(p.Scales)
	return p
}

// Regional reports whether the profile pools the feature map (R-MAC) instead of using the model's
// own embedding.
func (p Profile) Regional() bool { return len(p.Scales) > 0 }

// MaxScale is the largest long side the profile resizes to (0 for fast).
func (p Profile) MaxScale() int {
	if len(p.Scales) == 0 {
		return 0
	}
	return p.Scales[0]
}

// CheckProfile reports why the model cannot serve p: a regional profile pools the feature map, so
// the spec must name one.
func (s Model) CheckProfile(p Profile) error {
	if p.Regional() && s.FeatureMapTensor == "" {
		return fmt.Errorf("profile %s pools the feature map: model.feature_map_tensor must name it (%s for the default model)", p.Name, DefaultFeatureMapTensor)
	}
	return nil
}

// ProfileFingerprint identifies the vectors a model file and spec produce under profile p. The fast
// profile's is Fingerprint (collections made before profiles keep theirs); a regional profile's is
// "<id>-<12 hex>@<profile name>", the hash covering the model bytes, the pixel normalisation, the
// feature-map tensor and the profile's scales and levels.
func (s Model) ProfileFingerprint(modelSHA256 string, p Profile) string {
	if !p.Regional() {
		return s.Fingerprint(modelSHA256)
	}
	c := fmt.Sprintf("%s;input=%s;mean=%g,%g,%g;std=%g,%g,%g;order=%s;layout=%s;fmap=%s;rmac=%d;scales=%v;short=%d",
		preprocessVersion, s.Input, s.Mean[0], s.Mean[1], s.Mean[2], s.Std[0], s.Std[1], s.Std[2],
		s.ChannelOrder, s.Layout, s.FeatureMapTensor, p.Levels, p.Scales, MinShortSide)
	h := sha256.Sum256([]byte(strings.ToLower(modelSHA256) + "\n" + c))
	return s.ID + "-" + hex.EncodeToString(h[:6]) + "@" + p.Name
}

// ProfileOfFingerprint returns the profile name a fingerprint claims ("fast" when it names none),
// without any learned projection; only ProfileFingerprint can confirm the claim.
func ProfileOfFingerprint(fp string) string {
	fp, _ = SplitProjection(fp)
	if i := strings.LastIndexByte(fp, '@'); i >= 0 {
		return fp[i+1:]
	}
	return ProfileFast
}

// ProjectionSep joins a regional fingerprint and the name of the projection learned for the
// collection ("<id>-<hash>@ms317+pw512:1a2b3c4d"): the vectors of a projection are another space,
// so the projection is part of the fingerprint and a collection never mixes them.
const ProjectionSep = "+"

// WithProjection is the fingerprint of base's vectors passed through the projection named name
// ("" = base itself).
func WithProjection(base, name string) string {
	if name == "" {
		return base
	}
	return base + ProjectionSep + name
}

// SplitProjection splits a fingerprint into the fingerprint of the unprojected vectors and the
// projection's name ("" when it names none).
func SplitProjection(fp string) (base, projection string) {
	at := strings.LastIndexByte(fp, '@')
	if at < 0 {
		return fp, ""
	}
	i := strings.Index(fp[at:], ProjectionSep)
	if i < 0 {
		return fp, ""
	}
	return fp[:at+i], fp[at+i+len(ProjectionSep):]
}
