package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
)

// Embedder is the part of *embed.Engine that ingest needs.
type Embedder interface {
	Embed(ctx context.Context, imgs []embed.Image) ([]embed.Embedding, error)
}

// Input is one item to store.
type Input struct {
	// ID names the item; empty means ContentID(Image).
	ID string
	// Image is the encoded photo.
	Image []byte
	// Metadata is a JSON object, or empty.
	Metadata json.RawMessage
	// IfVersion, when not 0, stores the item only if the stored one is at this version
	// (index.ErrVersionConflict otherwise, also when the item no longer exists). It guards the
	// item's own write: a merge into a duplicate (DuplicateMerge) writes that item instead.
	IfVersion uint64
}

// DuplicateAction says what Store does with a photo that is an exact or near duplicate of a
// stored item. The values are the API's and the configuration's words.
type DuplicateAction string

// Duplicate actions.
const (
	DuplicateAllow  DuplicateAction = "allow"  // store it and report the duplicate
	DuplicateReject DuplicateAction = "reject" // refuse it with ErrDuplicate
	DuplicateMerge  DuplicateAction = "merge"  // store nothing new: add its missing metadata fields to the stored item
)

// Duplicate names the stored item a new photo duplicates.
type Duplicate struct {
	ID    string
	Score float32 // cosine similarity
	Tier  string  // how alike (the catalog-intelligence tiers: exact, near)
}

// DuplicateFinder reports the stored item (other than id) that the photo with this vector and
// thumbnail duplicates, or nil; an error when it could not look (the collection closed, storage
// failing, the context done). Duplicate detection belongs to the catalog-intelligence code;
// ingest only applies the policy.
type DuplicateFinder func(ctx context.Context, col *index.Collection, id string, vec []float32, thumb []byte) (*Duplicate, error)

// Policy is how Store treats inputs. Zero values mean the documented defaults.
type Policy struct {
	// OnDuplicate applies when FindDuplicate reports a duplicate; "" means DuplicateAllow.
	OnDuplicate DuplicateAction
	// FindDuplicate, when nil, turns duplicate detection off.
	FindDuplicate DuplicateFinder
	// ThumbnailSize is the longest side of stored thumbnails; 0 = spec.DefaultThumbnailSize.
	ThumbnailSize int
	// ThumbnailQuality is their JPEG quality; 0 = spec.DefaultThumbnailQuality.
	ThumbnailQuality int
	// SourceSize is the longest side of the source rendition stored with each item (index.Item.Source,
	// never enlarged); 0 = none.
	SourceSize int
	// SourceQuality is its JPEG quality; 0 = spec.DefaultSourceQuality.
	SourceQuality int
	// MaxPixels refuses larger images before decoding them; 0 = spec.DefaultMaxPixels.
	MaxPixels int64
	// Profile is the descriptor profile of col's vectors (embed.Info.ProfileFor of its fingerprint);
	// "" = the engine's default.
	Profile string
	// Force embeds items again even when their content hash and metadata are unchanged (they are
	// still reported Unchanged unless the new thumbnail differs).
	Force bool
}

func (p Policy) withDefaults() Policy {
	if p.OnDuplicate == "" {
		p.OnDuplicate = DuplicateAllow
	}
	if p.ThumbnailSize <= 0 {
		p.ThumbnailSize = spec.DefaultThumbnailSize
	}
	if p.ThumbnailQuality <= 0 {
		p.ThumbnailQuality = spec.DefaultThumbnailQuality
	}
	if p.MaxPixels <= 0 {
		p.MaxPixels = spec.DefaultMaxPixels
	}
	if p.SourceQuality <= 0 {
		p.SourceQuality = spec.DefaultSourceQuality
	}
	return p
}

// Outcome says what storing an input did.
type Outcome string

// Outcomes of Store.
const (
	Created   Outcome = "created"   // a new item
	Replaced  Outcome = "replaced"  // the id existed; its photo or metadata changed
	Unchanged Outcome = "unchanged" // the id existed with the same photo and metadata: nothing written
	Merged    Outcome = "merged"    // a duplicate: its missing metadata fields went to the stored item MergedInto
)

// Result reports one input. Outcome is empty when Err is set.
type Result struct {
	// ID is the item's id: the one given, or the content-derived one.
	ID      string
	Outcome Outcome
	// Version is the stored item's version after the write: ID's, or MergedInto's when Merged.
	Version uint64
	// MergedInto is the stored item that received the metadata (Merged only).
	MergedInto string
	// Duplicate is the stored item the photo duplicates, when detection found one.
	Duplicate *Duplicate
	// Metadata and UpdatedAt are the stored item's (MergedInto's when Merged).
	Metadata  json.RawMessage
	UpdatedAt time.Time
	// Timings are the embedding's, nil when the input was not embedded (Unchanged, early errors).
	Timings *embed.Timings
	Err     error
}

// ContentHash is the hash stored with every item to make re-runs idempotent.
func ContentHash(data []byte, metadata []byte) string {
	h := sha256.New()
	h.Write(data)
	h.Write([]byte{0})
	h.Write(metadata)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ContentID is the id of an input sent without one: a prefix and 128 bits of the photo's SHA-256,
// so the same photo always addresses the same item and two different photos never share one
// (file names do: every phone calls its photos image.jpg).
func ContentID(image []byte) string {
	sum := sha256.Sum256(image)
	return "img-" + hex.EncodeToString(sum[:16])
}

// AssignIDs gives every input without an id its ContentID and reports, per input, ErrDuplicateID
// for an id an earlier input already uses (nil elsewhere). Store calls it; a caller that splits one
// request into several Store calls calls it first on the whole request.
func AssignIDs(inputs []Input) []error {
	errs := make([]error, len(inputs))
	seen := make(map[string]int, len(inputs))
	for i := range inputs {
		if inputs[i].ID == "" {
			inputs[i].ID = ContentID(inputs[i].Image)
		}
		errs[i] = claimID(seen, inputs[i].ID, i)
	}
	return errs
}

// claimID records that item i uses id, or returns ErrDuplicateID naming the earlier one.
func claimID(seen map[string]int, id string, i int) error {
	if first, ok := seen[id]; ok {
		return fmt.Errorf("%w: item %d uses id %q, item %d already does", ErrDuplicateID, i+1, id, first+1)
	}
	seen[id] = i
	return nil
}

// Store embeds, thumbnails, checks for duplicates and stores inputs in col, returning one Result
// per input in order. Per-item problems (undecodable photo, duplicate refused, invalid item, stale
// IfVersion, repeated id) land in Result.Err and never stop the others. The error is non-nil only
// when the call as a whole failed (context, engine or storage failure); the Results then still say
// which items were stored before it (Outcome set) and which were not (Err set).
func Store(ctx context.Context, eng Embedder, col *index.Collection, inputs []Input, p Policy) ([]Result, error) {
	p = p.withDefaults()
	in := make([]Input, len(inputs))
	copy(in, inputs)
	res := make([]Result, len(in))
	type pending struct {
		i    int
		hash string
	}
	var todo []pending
	for i, err := range AssignIDs(in) {
		res[i].ID = in[i].ID
		if err != nil {
			res[i].Err = err
			continue
		}
		in[i].Metadata = compactJSON(in[i].Metadata)
		hash := ContentHash(in[i].Image, in[i].Metadata)
		if !p.Force && in[i].IfVersion == 0 && unchanged(col, in[i], hash, &res[i]) {
			continue
		}
		todo = append(todo, pending{i, hash})
	}
	if len(todo) == 0 {
		return res, nil
	}
	imgs := make([]embed.Image, len(todo))
	for k, t := range todo {
		imgs[k] = embed.Image{Data: in[t.i].Image, Profile: p.Profile}
	}
	embs, err := eng.Embed(ctx, imgs)
	if err != nil {
		pos := make([]int, len(todo))
		for k, t := range todo {
			pos[k] = t.i
		}
		return res, failAll(res, pos, fmt.Errorf("embed: %w", err))
	}
	var w writer
	now := time.Now().UTC()
	for k, t := range todo {
		r := &res[t.i]
		e := embs[k]
		if e.Err != nil {
			r.Err = e.Err
			continue
		}
		r.Timings = &e.Timings
		thumb, err := embed.Thumbnail(in[t.i].Image, p.ThumbnailSize, p.ThumbnailQuality, p.MaxPixels)
		if err != nil {
			r.Err = fmt.Errorf("thumbnail: %w", err)
			continue
		}
		source, err := SourceRendition(in[t.i].Image, p)
		if err != nil {
			r.Err = fmt.Errorf("source rendition: %w", err)
			continue
		}
		done, err := applyDuplicatePolicy(ctx, col, p, in[t.i], e.Vector, thumb, r)
		if err != nil {
			// The store is failing: nothing after this item (nor the queued ones) gets written.
			rest := slices.Clone(w.pos)
			for _, u := range todo[k:] {
				rest = append(rest, u.i)
			}
			return res, failAll(res, rest, err)
		}
		if done {
			continue
		}
		w.add(t.i, index.Item{ID: r.ID, Vector: e.Vector, Metadata: in[t.i].Metadata, Thumbnail: thumb, Source: source,
			ContentHash: t.hash, UpdatedAt: now, IfVersion: in[t.i].IfVersion})
	}
	return res, w.flush(ctx, col, res)
}

// SourceRendition is the source rendition stored for a photo (nil when p.SourceSize is 0): the
// photo itself when it is already a JPEG within the size and of a modest byte count (as a
// rendition is, when a catalog is embedded again from its renditions: no generation loss), else a
// JPEG of it resized to p.SourceSize.
func SourceRendition(img []byte, p Policy) ([]byte, error) {
	if p.SourceSize <= 0 {
		return nil, nil
	}
	if cfg, err := embed.DecodeConfig(img); err == nil && cfg.Format == "jpeg" &&
		max(cfg.Width, cfg.Height) <= p.SourceSize && len(img) <= cfg.Width*cfg.Height {
		return img, nil
	}
	return embed.Thumbnail(img, p.SourceSize, p.SourceQuality, p.MaxPixels)
}

// unchanged reports (in r) an input whose id is stored with the same content hash and metadata,
// without embedding it again: the cheap path that makes re-runs and re-uploads idempotent. The
// stored record is read once, so the version reported is the one that holds that content.
func unchanged(col *index.Collection, in Input, hash string, r *Result) bool {
	if h, ok := col.Has(in.ID); !ok || h != hash {
		return false
	}
	it, err := col.Get(in.ID)
	if err != nil || it.ContentHash != hash || !bytes.Equal(it.Metadata, in.Metadata) {
		return false // changed meanwhile, or metadata merged or tagged since: write it
	}
	r.Outcome, r.Version, r.Metadata, r.UpdatedAt = Unchanged, it.Version, it.Metadata, it.UpdatedAt
	return true
}

// compactJSON is metadata as the index stores it, so that its layout changes neither the content
// hash nor the comparison with the stored item. Invalid JSON is left for the index to refuse.
func compactJSON(m json.RawMessage) json.RawMessage {
	m = bytes.TrimSpace(m)
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	var buf bytes.Buffer
	if json.Compact(&buf, m) != nil {
		return m
	}
	return buf.Bytes()
}

// applyDuplicatePolicy looks for a stored duplicate of the photo and applies p.OnDuplicate. done
// means the input is decided (refused or merged, in r); err is a failure of the store itself.
func applyDuplicatePolicy(ctx context.Context, col *index.Collection, p Policy, in Input, vec []float32, thumb []byte, r *Result) (done bool, err error) {
	if p.FindDuplicate == nil {
		return false, nil
	}
	d, err := p.FindDuplicate(ctx, col, r.ID, vec, thumb)
	switch {
	case err != nil && p.OnDuplicate == DuplicateAllow:
		// The photo is stored whatever the check says: only the report of a duplicate is lost.
		return false, nil
	case err != nil:
		// Under reject or merge a photo stored because the check could not run could be the very
		// duplicate the policy keeps out (a merge's metadata would land on a stray new item): the
		// write fails instead, like a failing store.
		r.Err = err
		return true, err
	case d == nil:
		return false, nil
	}
	r.Duplicate = d
	switch p.OnDuplicate {
	case DuplicateReject:
		r.Err = fmt.Errorf("%w: item %q is %s %s duplicate of %q (cosine %.3f)", ErrDuplicate, r.ID, article(d.Tier), d.Tier, d.ID, d.Score)
		return true, nil
	case DuplicateMerge:
		it, w, err := mergeMetadata(ctx, col, d.ID, in.Metadata)
		switch {
		case err == nil:
			r.Outcome, r.MergedInto, r.Version, r.Metadata, r.UpdatedAt = Merged, d.ID, w.Version, it.Metadata, it.UpdatedAt
			return true, nil
		case errors.Is(err, index.ErrNotFound):
			// The duplicate was deleted since it was found: the photo is new after all.
			r.Duplicate = nil
			return false, nil
		case itemError(err):
			r.Err = err
			return true, nil
		default:
			r.Err = err
			return true, err
		}
	}
	return false, nil
}

// itemError tells the errors that concern one item (the others may store) from those of the store.
func itemError(err error) bool {
	return errors.Is(err, index.ErrInvalidItem) || errors.Is(err, index.ErrVersionConflict)
}

// writer collects the items of one Store call for a single index.Put.
type writer struct {
	items []index.Item
	pos   []int // index of each item's Result
}

func (w *writer) add(i int, it index.Item) {
	w.items = append(w.items, it)
	w.pos = append(w.pos, i)
}

// flush writes the items in one Put. When the index refuses the group because of one item, it
// retries them one by one so that only that item fails.
func (w *writer) flush(ctx context.Context, col *index.Collection, res []Result) error {
	if len(w.items) == 0 {
		return nil
	}
	ws, err := col.Put(ctx, w.items...)
	if err == nil {
		for j := range w.items {
			record(col, &res[w.pos[j]], w.items[j], ws[j])
		}
		return nil
	}
	if itemError(err) && len(w.items) == 1 {
		res[w.pos[0]].Err = err
		return nil
	}
	if !itemError(err) {
		return failAll(res, w.pos, fmt.Errorf("store: %w", err))
	}
	for j, it := range w.items {
		ws, err := col.Put(ctx, it)
		switch {
		case err == nil:
			record(col, &res[w.pos[j]], it, ws[0])
		case itemError(err):
			res[w.pos[j]].Err = err
		default:
			return failAll(res, w.pos[j:], fmt.Errorf("store: %w", err))
		}
	}
	return nil
}

// failAll sets the call's error on the Results at pos (the very value Store returns, so callers
// can tell "not stored because the call failed" from an item's own error) and returns it.
func failAll(res []Result, pos []int, err error) error {
	for _, i := range pos {
		res[i].Err = err
	}
	return err
}

// record fills a Result from what Put did.
func record(col *index.Collection, r *Result, it index.Item, w index.Written) {
	r.Version, r.Metadata, r.UpdatedAt = w.Version, it.Metadata, it.UpdatedAt
	switch w.Outcome {
	case index.Created:
		r.Outcome = Created
	case index.Replaced:
		r.Outcome = Replaced
	default:
		r.Outcome = Unchanged
		// Nothing was written: report the stored item's time, not this call's.
		if stored, err := col.Get(it.ID); err == nil && stored.Version == w.Version {
			r.Metadata, r.UpdatedAt = stored.Metadata, stored.UpdatedAt
		}
	}
}

// article is the indefinite article before word ("an exact", "a near").
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiouAEIOU", rune(word[0])) {
		return "an"
	}
	return "a"
}
