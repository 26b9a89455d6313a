package rerank

import "errors"

// Sentinel errors.
var (
	// ErrMode: a re-ranking mode other than none, qe, kr and qe+kr.
	ErrMode = errors.New("rerank: unknown mode")
	// ErrParams: parameters outside their ranges.
	ErrParams = errors.New("rerank: invalid parameters")
)
