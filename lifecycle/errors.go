package lifecycle

import (
	"errors"
	"fmt"
)

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
	// ErrNotRegional: a projection is learned from regional vectors; the collection's profile
	// (fast) has none.
	ErrNotRegional = errors.New("lifecycle: the collection's descriptor profile has no regions to learn a projection from")
	// ErrTooFewItems: the collection holds fewer items than a projection of the asked dimensions
	// is learned from (TooFewItemsError says how many are needed).
	ErrTooFewItems = errors.New("lifecycle: too few items to learn a projection from")
	// ErrTuneInput: tune options out of range (dimensions, power, sample).
	ErrTuneInput = errors.New("lifecycle: bad tune options")
	// ErrNoProjection: a fingerprint names a projection the data file does not hold.
	ErrNoProjection = errors.New("lifecycle: unknown projection")
)

// TooFewItemsError is ErrTooFewItems with the numbers.
type TooFewItemsError struct{ Have, Need, Dims int }

func (e *TooFewItemsError) Error() string {
	return fmt.Sprintf("%v: the collection holds %d items, a %d-d projection is learned from at least %d", ErrTooFewItems, e.Have, e.Dims, e.Need)
}

func (e *TooFewItemsError) Unwrap() error { return ErrTooFewItems }
