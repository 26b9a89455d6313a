package edit

import "errors"

// Sentinel errors. Callers branch on them with errors.Is; the returned errors wrap them with the
// item or member they concern. Errors from index (not found, version conflict, storage) pass
// through wrapped.
var (
	// ErrInvalidPatch: a patch that is not JSON, or whose result would not be a JSON object of
	// finite numbers (metadata must stay one).
	ErrInvalidPatch = errors.New("invalid merge patch")
	// ErrTooLarge: the patched metadata would exceed the size limit.
	ErrTooLarge = errors.New("patched metadata too large")
)
