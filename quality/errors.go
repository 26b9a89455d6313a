package quality

import "errors"

// Sentinel errors. Callers branch on them with errors.Is; the returned errors wrap them with the
// field and the limit at fault.
var (
	// ErrInvalidFeedback: a feedback report outside the limits (limits.max_k, limits.max_id_bytes)
	// or with nothing to score.
	ErrInvalidFeedback = errors.New("quality: invalid feedback")
	// ErrConfig: New was given a setup it cannot run (e.g. probes without an embedder).
	ErrConfig = errors.New("quality: bad configuration")
)
