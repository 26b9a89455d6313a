package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/embed/spec"
	"github.com/lookalike/lookalike/index"
)

// Embedder is the part of *embed.Engine the loader needs.
type Embedder interface {
	Embed(ctx context.Context, imgs []embed.Image) ([]embed.Embedding, error)
}

// Options tune a load. Zero values mean the documented defaults.
type Options struct {
	Workers          int   // concurrent batches; 0 = number of CPUs
	BatchSize        int   // images per Embed call; 0 = 8
	ThumbnailSize    int   // 0 = spec.DefaultThumbnailSize
	ThumbnailQuality int   // 0 = spec.DefaultThumbnailQuality
	MaxPixels        int64 // 0 = spec.DefaultMaxPixels
	// Force re-embeds items whose content hash is unchanged.
	Force bool
	// Progress, when set, is called after every batch (from one goroutine at a time).
	Progress func(Progress)
	Logger   *slog.Logger
}

// Progress is a snapshot of a running load.
type Progress struct {
	Done, Total int
	Elapsed     time.Duration
}

// Failure names a source that could not be loaded, and why.
type Failure struct {
	ID, Path string
	Err      error
}

// Report summarises a load.
type Report struct {
	Added, Skipped, Failed int
	Failures               []Failure
	Elapsed                time.Duration
}

// ContentHash is the hash stored with every item to make re-runs idempotent.
func ContentHash(data []byte, metadata []byte) string {
	h := sha256.New()
	h.Write(data)
	h.Write([]byte{0})
	h.Write(metadata)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Run loads sources into col. It returns an error only when the load as a whole cannot go on
// (context cancelled, storage failing); per-item problems land in Report.Failures.
func Run(ctx context.Context, eng Embedder, col *index.Collection, sources []Source, o Options) (Report, error) {
	if o.Workers <= 0 {
		o.Workers = runtime.NumCPU()
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 8
	}
	if o.ThumbnailSize <= 0 {
		o.ThumbnailSize = spec.DefaultThumbnailSize
	}
	if o.ThumbnailQuality <= 0 {
		o.ThumbnailQuality = spec.DefaultThumbnailQuality
	}
	if o.MaxPixels <= 0 {
		o.MaxPixels = spec.DefaultMaxPixels
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	batches := make(chan []Source)
	var (
		mu       sync.Mutex
		rep      Report
		done     atomic.Int64
		wg       sync.WaitGroup
		progress sync.Mutex
	)
	fail := func(s Source, err error) {
		mu.Lock()
		rep.Failed++
		rep.Failures = append(rep.Failures, Failure{ID: s.ID, Path: s.Path, Err: err})
		mu.Unlock()
		o.Logger.Warn("ingest: item failed", "id", s.ID, "path", s.Path, "err", err)
	}
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range batches {
				added, skipped, err := loadBatch(ctx, eng, col, batch, o, fail)
				if err != nil {
					cancel(err)
					return
				}
				mu.Lock()
				rep.Added += added
				rep.Skipped += skipped
				mu.Unlock()
				n := done.Add(int64(len(batch)))
				if o.Progress != nil {
					progress.Lock()
					o.Progress(Progress{Done: int(n), Total: len(sources), Elapsed: time.Since(start)})
					progress.Unlock()
				}
			}
		}()
	}
feed:
	for i := 0; i < len(sources); i += o.BatchSize {
		end := min(i+o.BatchSize, len(sources))
		select {
		case batches <- sources[i:end]:
		case <-ctx.Done():
			break feed
		}
	}
	close(batches)
	wg.Wait()
	rep.Elapsed = time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return rep, err
	}
	return rep, nil
}

// loadBatch embeds and stores one batch. Only errors that stop the whole load are returned.
func loadBatch(ctx context.Context, eng Embedder, col *index.Collection, batch []Source, o Options, fail func(Source, error)) (added, skipped int, err error) {
	type pending struct {
		src  Source
		data []byte
		hash string
	}
	var todo []pending
	for _, s := range batch {
		data, err := os.ReadFile(s.Path)
		if err != nil {
			fail(s, fmt.Errorf("read: %w", err))
			continue
		}
		hash := ContentHash(data, s.Metadata)
		if !o.Force {
			if old, ok := col.Has(s.ID); ok && old == hash {
				skipped++
				continue
			}
		}
		todo = append(todo, pending{src: s, data: data, hash: hash})
	}
	if len(todo) == 0 {
		return 0, skipped, nil
	}
	imgs := make([]embed.Image, len(todo))
	for i, p := range todo {
		imgs[i] = embed.Image{Data: p.data}
	}
	embs, err := eng.Embed(ctx, imgs)
	if err != nil {
		return 0, skipped, fmt.Errorf("embed batch: %w", err)
	}
	items := make([]index.Item, 0, len(todo))
	for i, p := range todo {
		if embs[i].Err != nil {
			fail(p.src, embs[i].Err)
			continue
		}
		thumb, err := embed.Thumbnail(p.data, o.ThumbnailSize, o.ThumbnailQuality, o.MaxPixels)
		if err != nil {
			fail(p.src, fmt.Errorf("thumbnail: %w", err))
			continue
		}
		items = append(items, index.Item{
			ID: p.src.ID, Vector: embs[i].Vector, Metadata: p.src.Metadata,
			Thumbnail: thumb, ContentHash: p.hash, UpdatedAt: time.Now().UTC(),
		})
	}
	if len(items) == 0 {
		return 0, skipped, nil
	}
	if err := col.Upsert(ctx, items...); err != nil {
		if errors.Is(err, index.ErrInvalidItem) && len(items) > 1 {
			// One bad item must not sink its batch: retry one by one to find it.
			for _, it := range items {
				if err := col.Upsert(ctx, it); err != nil {
					if errors.Is(err, index.ErrInvalidItem) {
						fail(Source{ID: it.ID}, err)
						continue
					}
					return added, skipped, fmt.Errorf("store: %w", err)
				}
				added++
			}
			return added, skipped, nil
		}
		if errors.Is(err, index.ErrInvalidItem) {
			fail(Source{ID: items[0].ID}, err)
			return 0, skipped, nil
		}
		return 0, skipped, fmt.Errorf("store: %w", err)
	}
	return len(items), skipped, nil
}
