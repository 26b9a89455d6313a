package quality

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/internal/config"
	"github.com/lookalike/lookalike/internal/ingest"
)

// probeConfig is the labelled-probe setup (config quality.probes).
type probeConfig struct {
	Manifests  []string
	Collection string
	Interval   time.Duration
	K          int
	GroupField string
}

func probeConfigFrom(cfg config.Config) probeConfig {
	p := cfg.Quality.Probes
	pc := probeConfig{Manifests: p.Manifests, Collection: p.Collection, Interval: p.Interval, K: p.K, GroupField: p.GroupField}
	if pc.Collection == "" {
		pc.Collection = cfg.Data.DefaultCollection
	}
	return pc
}

// probeSetName names a probe set after its manifest file (probes/shoes.csv → shoes).
func probeSetName(path string) string {
	return strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
}

type probe struct {
	id, group string
	vec       []float32
}

// probeSet is one manifest's probes and latest result. Guarded by Monitor.mu.
type probeSet struct {
	name string
	// fingerprint is the probed collection's when the probes were embedded (under its descriptor
	// profile): a collection made again under another profile needs them embedded again.
	fingerprint string
	probes      []probe
	failed      int // probes whose photo could not be read or embedded
	precision   float64
	hitRate     float64
	runs        int
	lastRun     time.Time
	lastErr     string
}

// probeBatch is how many probe photos are embedded per call.
const probeBatch = 32

// RunProbes loads the probe sets not loaded yet and searches every probe once, now. The background
// loop does the same on quality.probes.interval and after the probed collection changes.
func (q *Monitor) RunProbes(ctx context.Context) {
	q.loadProbes(ctx)
	q.runProbes(ctx)
}

// loadProbes reads and embeds every manifest not loaded yet. A manifest that fails is logged and
// retried on the next round.
func (q *Monitor) loadProbes(ctx context.Context) {
	for _, path := range q.probes.Manifests {
		name := probeSetName(path)
		q.mu.Lock()
		_, done := q.probeSets[name]
		q.mu.Unlock()
		if done {
			continue
		}
		ps, err := q.loadProbeSet(ctx, name, path)
		if err != nil {
			if ctx.Err() == nil {
				q.log.Warn("quality: probe set not loaded", "set", name, "path", path, "err", err)
			}
			continue
		}
		q.mu.Lock()
		q.probeSets[name] = ps
		q.mu.Unlock()
	}
}

func (q *Monitor) loadProbeSet(ctx context.Context, name, path string) (*probeSet, error) {
	profile, fp := q.probedProfile()
	if q.engineFor != nil && fp != "" {
		if eng, ok := q.engineFor(fp); ok {
			return q.embedProbeSet(ctx, name, path, eng, "", fp)
		}
	}
	return q.embedProbeSet(ctx, name, path, q.eng, profile, fp)
}

// embedProbeSet reads a manifest and embeds its probes with eng under profile ("" = eng's own):
// vectors for a collection of fingerprint fp.
func (q *Monitor) embedProbeSet(ctx context.Context, name, path string, eng Embedder, profile, fp string) (*probeSet, error) {
	srcs, err := ingest.Collect([]string{path})
	if err != nil {
		return nil, err
	}
	ps := &probeSet{name: name, fingerprint: fp}
	var imgs []embed.Image
	var kept []probe
	for _, s := range srcs {
		g := metadataField(s.Metadata, q.probes.GroupField)
		if g == "" {
			ps.failed++
			continue
		}
		data, err := os.ReadFile(s.Path)
		if err != nil {
			ps.failed++
			continue
		}
		imgs = append(imgs, embed.Image{Data: data, Profile: profile})
		kept = append(kept, probe{id: s.ID, group: g})
	}
	for lo := 0; lo < len(imgs); lo += probeBatch {
		hi := min(lo+probeBatch, len(imgs))
		embs, err := eng.Embed(ctx, imgs[lo:hi])
		if err != nil {
			return nil, fmt.Errorf("quality: embed probes of %s: %w", path, err)
		}
		for i, e := range embs {
			if e.Err != nil {
				ps.failed++
				continue
			}
			p := kept[lo+i]
			p.vec = e.Vector
			ps.probes = append(ps.probes, p)
		}
	}
	if len(ps.probes) == 0 {
		return nil, fmt.Errorf("quality: no usable probe in %s (%d failed; each needs a photo and a %q value)", path, ps.failed, q.probes.GroupField)
	}
	return ps, nil
}

// probedProfile is the descriptor profile of the probed collection's vectors and its fingerprint
// ("" for both when it does not exist yet, or when the engine cannot say: the default profile).
func (q *Monitor) probedProfile() (profile, fingerprint string) {
	col, err := q.probed()
	if err != nil {
		return "", ""
	}
	if ie, ok := q.eng.(interface{ Info() embed.Info }); ok {
		profile, _ = ie.Info().ProfileFor(col.Fingerprint())
	}
	return profile, col.Fingerprint()
}

// metadataField is the string form of a top-level metadata field ("" when absent).
func metadataField(meta json.RawMessage, field string) string {
	if len(meta) == 0 {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(meta, &m) != nil || m[field] == nil {
		return ""
	}
	switch v := m[field].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// runProbes searches every probe of every set; a result is relevant when its group metadata equals
// the probe's. The probe's own id is excluded in case it was indexed after all.
func (q *Monitor) runProbes(ctx context.Context) {
	col, err := q.probed()
	if err != nil {
		return
	}
	q.mu.Lock()
	sets := make([]*probeSet, 0, len(q.probeSets))
	for name, ps := range q.probeSets {
		if ps.fingerprint != col.Fingerprint() {
			delete(q.probeSets, name) // embedded for another profile: loaded again next round
			continue
		}
		sets = append(sets, ps)
	}
	q.mu.Unlock()
	for _, ps := range sets {
		if ctx.Err() != nil {
			return
		}
		q.runProbeSet(ctx, col, ps)
	}
}

// probed is the probed collection: the generation its alias names (docs/lifecycle.md).
func (q *Monitor) probed() (*index.Collection, error) {
	return q.db.Collection(q.db.Resolve(q.probes.Collection))
}

// runProbeSet scores one set and records the result (state and metrics).
func (q *Monitor) runProbeSet(ctx context.Context, col *index.Collection, ps *probeSet) {
	sc, lastErr, ok := q.scoreProbeSet(ctx, col, ps)
	if !ok {
		return
	}
	now := q.now()
	q.mu.Lock()
	ps.runs++
	ps.lastRun = now
	ps.lastErr = lastErr
	if sc.Probes > 0 {
		ps.precision, ps.hitRate = sc.Precision, sc.HitRate
	}
	prec := ps.precision
	q.mu.Unlock()
	if sc.Probes > 0 {
		q.m.probePrecision.WithLabelValues(ps.name).Set(prec)
		q.m.probeRuns.WithLabelValues(ps.name).Inc()
		q.m.probeLastRun.WithLabelValues(ps.name).Set(float64(now.Unix()))
	}
}

// ProbeScore is one probe set's result on one collection: precision@k and hit rate (the share of
// probes with a relevant result) over the Probes whose search succeeded.
type ProbeScore struct {
	Probes    int     `json:"probes"`
	K         int     `json:"k"`
	Precision float64 `json:"precision_at_k"`
	HitRate   float64 `json:"hit_rate_at_k"`
}

// scoreProbeSet searches every probe of ps in col; a result is relevant when its group metadata
// equals the probe's. ok is false when ctx ended.
func (q *Monitor) scoreProbeSet(ctx context.Context, col *index.Collection, ps *probeSet) (sc ProbeScore, lastErr string, ok bool) {
	k := q.probes.K
	var psum, hits float64
	for _, p := range ps.probes {
		res, err := col.Search(ctx, p.vec, index.SearchOptions{K: k, ExcludeIDs: []string{p.id}})
		if err != nil {
			if ctx.Err() != nil {
				return sc, "", false
			}
			lastErr = err.Error()
			continue
		}
		rel := 0
		for _, r := range res {
			if metadataField(r.Metadata, q.probes.GroupField) == p.group {
				rel++
			}
		}
		psum += float64(rel) / float64(k)
		if rel > 0 {
			hits++
		}
		sc.Probes++
	}
	sc.K = k
	if sc.Probes > 0 {
		sc.Precision, sc.HitRate = psum/float64(sc.Probes), hits/float64(sc.Probes)
	}
	return sc, lastErr, true
}

// ScoreProbes scores every configured probe set on col, a generation of the probed collection (the
// other one of a rebuild, say), with its probes embedded by eng (which makes col's vectors). It
// records nothing: the monitor's figures stay those of the live collection. Nil when no set is
// configured or col is not a generation of the probed collection.
func (q *Monitor) ScoreProbes(ctx context.Context, col *index.Collection, eng Embedder) (map[string]ProbeScore, error) {
	base, _ := index.ParseGeneration(col.Name())
	if probed, _ := index.ParseGeneration(q.probes.Collection); len(q.probes.Manifests) == 0 || base != probed {
		return nil, nil
	}
	out := map[string]ProbeScore{}
	for _, path := range q.probes.Manifests {
		ps, err := q.scoredSet(ctx, probeSetName(path), path, eng, col.Fingerprint())
		if err != nil {
			return nil, err
		}
		sc, _, ok := q.scoreProbeSet(ctx, col, ps)
		if !ok {
			return nil, ctx.Err()
		}
		out[ps.name] = sc
	}
	return out, nil
}

// maxScoredSets bounds the cache of probe sets embedded for ScoreProbes (sets × fingerprints).
const maxScoredSets = 16

// scoredSet is the probe set of path embedded for fingerprint fp, cached.
func (q *Monitor) scoredSet(ctx context.Context, name, path string, eng Embedder, fp string) (*probeSet, error) {
	key := name + "\x00" + fp
	q.mu.Lock()
	ps, ok := q.scored[key]
	if live, found := q.probeSets[name]; !ok && found && live.fingerprint == fp {
		ps, ok = live, true // the live collection's, embedded by the background loop
	}
	q.mu.Unlock()
	if ok {
		return ps, nil
	}
	ps, err := q.embedProbeSet(ctx, name, path, eng, "", fp)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	if len(q.scored) >= maxScoredSets {
		clear(q.scored)
	}
	q.scored[key] = ps
	q.mu.Unlock()
	return ps, nil
}
