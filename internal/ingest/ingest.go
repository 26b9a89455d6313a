package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lookalike/lookalike/index"
)

// Options tune a load. Zero values mean the documented defaults.
type Options struct {
	Workers   int // concurrent batches; 0 = number of CPUs
	BatchSize int // images per Store call (one Embed call); 0 = 8
	// Policy is how every batch is stored (thumbnails, duplicates, Force).
	Policy Policy
	// Progress, when set, is called after every batch (from one goroutine at a time).
	Progress func(Progress)
	// Logger gets one debug line per failed item (the Report lists them) and nothing else.
	Logger *slog.Logger
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
	Added    int // created or replaced
	Skipped  int // unchanged
	Merged   int // duplicates merged into a stored item (Policy.OnDuplicate merge)
	Failed   int
	Failures []Failure // one per failed source, in no particular order
	Elapsed  time.Duration
}

// Run loads sources into col through Store, in batches on o.Workers goroutines. It returns an
// error only when the load as a whole cannot go on (context cancelled, storage failing); per-item
// problems land in Report.Failures, among them ErrDuplicateID for every source whose id an
// earlier source already uses.
func Run(ctx context.Context, eng Embedder, col *index.Collection, sources []Source, o Options) (Report, error) {
	if o.Workers <= 0 {
		o.Workers = runtime.NumCPU()
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 8
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

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
		o.Logger.Debug("ingest: item failed", "id", s.ID, "path", s.Path, "err", err)
	}
	// A repeated id would silently replace the earlier source: refuse it up front, so batches
	// running concurrently never race on one id either.
	unique := make([]Source, 0, len(sources))
	seen := make(map[string]int, len(sources))
	for i, s := range sources {
		if err := claimID(seen, s.ID, i); err != nil {
			fail(s, err)
			continue
		}
		unique = append(unique, s)
	}
	done.Add(int64(len(sources) - len(unique)))

	batches := make(chan []Source)
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range batches {
				tally, err := loadBatch(ctx, eng, col, batch, o.Policy, fail)
				mu.Lock()
				rep.Added += tally.Added
				rep.Skipped += tally.Skipped
				rep.Merged += tally.Merged
				mu.Unlock()
				if err != nil {
					cancel(err)
					return
				}
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
	for i := 0; i < len(unique); i += o.BatchSize {
		end := min(i+o.BatchSize, len(unique))
		select {
		case batches <- unique[i:end]:
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

// loadBatch reads one batch's files and stores them. Only errors that stop the whole load are
// returned; the tally counts what was stored before.
func loadBatch(ctx context.Context, eng Embedder, col *index.Collection, batch []Source, p Policy, fail func(Source, error)) (Report, error) {
	var tally Report
	inputs := make([]Input, 0, len(batch))
	srcs := make([]Source, 0, len(batch))
	for _, s := range batch {
		data, err := os.ReadFile(s.Path)
		if err != nil {
			fail(s, fmt.Errorf("read: %w", err))
			continue
		}
		inputs = append(inputs, Input{ID: s.ID, Image: data, Metadata: s.Metadata})
		srcs = append(srcs, s)
	}
	if len(inputs) == 0 {
		return tally, nil
	}
	results, err := Store(ctx, eng, col, inputs, p)
	for i, r := range results {
		switch {
		case r.Err != nil && r.Err == err:
			// Not stored because the load stops: a re-run stores it, so it is not listed.
		case r.Err != nil:
			fail(srcs[i], r.Err)
		case r.Outcome == Unchanged:
			tally.Skipped++
		case r.Outcome == Merged:
			tally.Merged++
		default:
			tally.Added++
		}
	}
	return tally, err
}
