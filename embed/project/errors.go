package project

import "errors"

var (
	// ErrInput: too few or inconsistent regional vectors to learn from, or bad options.
	ErrInput = errors.New("project: bad input")
	// ErrFormat: a serialised projection is truncated, of another version or corrupt.
	ErrFormat = errors.New("project: bad projection data")
	// ErrDims: vectors of another length than the projection's input.
	ErrDims = errors.New("project: dimension mismatch")
)
