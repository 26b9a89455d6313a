package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
)

// other is the generation that is not live: the mirror's target.
func (j Job) other() string {
	if j.Live == j.From {
		return j.To
	}
	return j.From
}

// copyBatch copies the next batch of live items after the cursor into the shadow, then saves the
// cursor: a crash repeats at most this batch, whose items are then found current and skipped.
func (m *Manager) copyBatch(ctx context.Context, r *run) error {
	j := r.snapshot()
	src, dst, err := m.pair(j)
	if err != nil {
		return err
	}
	page, next, err := src.List(j.Cursor, m.opts.Batch)
	if err != nil {
		return err
	}
	ids := make([]string, len(page))
	for i, it := range page {
		ids[i] = it.ID
	}
	st, err := m.syncItems(ctx, src, dst, ids)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.job.Copied += len(ids)
	r.job.FromThumbnail += st.fromThumb
	r.job.Skipped += st.skipped
	r.job.Total = max(src.Info().Count, r.job.Copied)
	if len(ids) > 0 {
		r.job.Cursor = ids[len(ids)-1]
	}
	if next == "" {
		r.job.State, r.job.Total = StateReady, r.job.Copied
		m.log.Info("rebuild: copy complete", "collection", j.Base, "shadow", j.To, "items", r.job.Copied, "from_thumbnail", r.job.FromThumbnail)
	}
	r.mu.Unlock()
	return m.save(r)
}

func (m *Manager) pair(j Job) (src, dst *index.Collection, err error) {
	if src, err = m.db.Collection(j.Live); err != nil {
		return nil, nil, err
	}
	if dst, err = m.db.Collection(j.other()); err != nil {
		return nil, nil, err
	}
	return src, dst, nil
}

// mirror copies the current state of up to limit changed ids from the live generation to the other
// one and acknowledges their change records; it returns how many it handled.
func (m *Manager) mirror(ctx context.Context, r *run, limit int) (int, error) {
	j := r.snapshot()
	src, dst, err := m.pair(j)
	if err != nil {
		return 0, err
	}
	chs, _, err := src.Changes(limit)
	if err != nil || len(chs) == 0 {
		return 0, err
	}
	ids := make([]string, len(chs))
	for i, ch := range chs {
		ids[i] = ch.ID
	}
	st, err := m.syncItems(ctx, src, dst, ids)
	if err != nil {
		return 0, err
	}
	if err := src.AckChanges(chs); err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.job.Mirrored += len(chs)
	r.job.FromThumbnail += st.fromThumb
	r.mu.Unlock()
	return len(chs), nil
}

type syncStats struct{ fromThumb, skipped int }

// syncItems makes dst hold what src holds for ids: absent ones deleted, same content with other
// metadata updated in place, new or changed content re-embedded with dst's engine.
func (m *Manager) syncItems(ctx context.Context, src, dst *index.Collection, ids []string) (syncStats, error) {
	var st syncStats
	rctx := index.WithReplication(ctx)
	var embedIt []index.Item
	var imgs []embed.Image
	for _, id := range ids {
		it, err := src.Get(id)
		if errors.Is(err, index.ErrNotFound) {
			if _, err := dst.Delete(rctx, id); err != nil {
				return st, fmt.Errorf("mirror delete %q: %w", id, err)
			}
			continue
		}
		if err != nil {
			return st, err
		}
		cur, err := dst.Get(id)
		if err == nil && it.ContentHash != "" && cur.ContentHash == it.ContentHash && bytes.Equal(cur.Thumbnail, it.Thumbnail) {
			if !bytes.Equal(cur.Metadata, it.Metadata) || !cur.UpdatedAt.Equal(it.UpdatedAt) {
				if _, err := dst.Update(rctx, id, func(d *index.Item) error {
					d.Metadata, d.UpdatedAt = it.Metadata, it.UpdatedAt
					return nil
				}); err != nil && !errors.Is(err, index.ErrNotFound) {
					return st, fmt.Errorf("mirror metadata of %q: %w", id, err)
				}
			}
			continue
		}
		img, ok := []byte(nil), false
		if m.opts.Source != nil {
			img, ok = m.opts.Source(src, id)
		}
		if !ok {
			img = it.Thumbnail
			st.fromThumb++
		}
		if len(img) == 0 {
			st.skipped++
			m.log.Warn("rebuild: item has neither source nor thumbnail; not copied", "collection", src.Name(), "id", id)
			continue
		}
		it.Vector, it.Version = nil, 0
		embedIt = append(embedIt, it)
		imgs = append(imgs, embed.Image{Data: img})
	}
	if len(imgs) == 0 {
		return st, nil
	}
	eng, ok := m.opts.Engine(dst.Fingerprint())
	if !ok {
		return st, fmt.Errorf("%w: no engine for %s (fingerprint %s)", ErrUnknownModel, dst.Name(), dst.Fingerprint())
	}
	embs, err := m.embedThrottled(ctx, eng, imgs)
	if err != nil {
		return st, err
	}
	items := embedIt[:0]
	for i, e := range embs {
		if e.Err != nil {
			st.skipped++
			m.log.Warn("rebuild: item not re-embedded", "id", embedIt[i].ID, "err", e.Err)
			continue
		}
		embedIt[i].Vector = e.Vector
		items = append(items, embedIt[i])
	}
	if _, err := dst.Put(rctx, items...); err != nil {
		return st, fmt.Errorf("write %s: %w", dst.Name(), err)
	}
	return st, nil
}

// embedThrottled waits for an idle inference slot (live traffic first), then embeds.
func (m *Manager) embedThrottled(ctx context.Context, eng Embedder, imgs []embed.Image) ([]embed.Embedding, error) {
	for {
		if release, ok := m.opts.Admit(); ok {
			defer release()
			return eng.Embed(ctx, imgs)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Switch points the alias at the shadow: under the live generation's write lock it drains the
// change set, turns tracking on for the shadow and moves the alias; the previous generation then
// receives the writes (mirror) until the grace period ends, so Rollback loses nothing.
func (m *Manager) Switch(ctx context.Context, base string) (Job, error) {
	return m.move(ctx, base, StateReady, func(j Job) string { return j.To }, func(j *Job) {
		j.State, j.SwitchedAt = StateSwitched, time.Now().UTC()
		j.GraceUntil = j.SwitchedAt.Add(m.opts.Grace)
	})
}

// Rollback points the alias back at the previous generation, during the grace period.
func (m *Manager) Rollback(ctx context.Context, base string) (Job, error) {
	return m.move(ctx, base, StateSwitched, func(j Job) string { return j.From }, func(j *Job) {
		j.State, j.SwitchedAt, j.GraceUntil = StateReady, time.Time{}, time.Time{}
	})
}

// move flips the alias of base to target(job) when the job is in state need, then applies after.
func (m *Manager) move(ctx context.Context, base, need string, target func(Job) string, after func(*Job)) (Job, error) {
	r, err := m.get(base)
	if err != nil {
		return Job{}, err
	}
	r.opMu.Lock()
	defer r.opMu.Unlock()
	j := r.snapshot()
	if j.State != need || j.Live == target(j) {
		return j, fmt.Errorf("%w: rebuild of %s is %s (this needs %s)", ErrNotReady, base, j.State, need)
	}
	if err := m.flip(ctx, r, target(j)); err != nil {
		return r.snapshot(), err
	}
	r.mu.Lock()
	after(&r.job)
	r.mu.Unlock()
	return r.snapshot(), m.save(r)
}

// flip moves the alias from the live generation to to with nothing lost: writers of the live one
// wait while its remaining changes are copied and the alias record is written.
func (m *Manager) flip(ctx context.Context, r *run, to string) error {
	j := r.snapshot()
	src, dst, err := m.pair(j)
	if err != nil {
		return err
	}
	// Drain most of the backlog before taking the lock, so writers wait only for the tail.
	if err := m.drain(ctx, r); err != nil {
		return err
	}
	err = src.Quiesce(func() error {
		if err := m.drain(ctx, r); err != nil {
			return err
		}
		if err := dst.Track(true); err != nil {
			return err
		}
		if err := m.db.SetAlias(j.Base, to); err != nil {
			return err
		}
		r.mu.Lock()
		r.job.Live = to
		r.mu.Unlock()
		return m.save(r)
	})
	if err != nil {
		return err
	}
	m.log.Info("rebuild: alias switched", "collection", j.Base, "from", src.Name(), "to", to)
	return src.Track(false)
}

// drain mirrors until the live generation's change set is empty.
func (m *Manager) drain(ctx context.Context, r *run) error {
	for {
		n, err := m.mirror(ctx, r, 256)
		if err != nil || n == 0 {
			return err
		}
	}
}
