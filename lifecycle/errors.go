package lifecycle

import "errors"

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrRunning: a rebuild of the collection is already under way (or awaiting its switch).
	ErrRunning = errors.New("lifecycle: a rebuild is already running")
	// ErrNoJob: no rebuild of the collection is known.
	ErrNoJob = errors.New("lifecycle: no rebuild")
	// ErrNotReady: the switch or rollback the job's state does not allow (copy unfinished, grace over).
	ErrNotReady = errors.New("lifecycle: not in a state that allows this")
	// ErrUnknownModel: a model no engine is loaded for.
	ErrUnknownModel = errors.New("lifecycle: unknown model")
	// ErrSameVectors: the rebuild asked for would make the vectors the live generation holds (same
	// model, preprocessing and profile).
	ErrSameVectors = errors.New("lifecycle: the target makes the vectors the collection already holds")
)
