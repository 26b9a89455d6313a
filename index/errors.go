package index

import "errors"

// Sentinel errors. Callers branch on them with errors.Is; the returned errors
// wrap them with detail (which id, which field, which cause).
var (
	// Lookups.

	// ErrNotFound: no collection or item with that name or id.
	ErrNotFound = errors.New("index: not found")
	// ErrExists: CreateCollection with a name already in use.
	ErrExists = errors.New("index: already exists")

	// Validation.

	// ErrInvalidName: a collection name outside [a-z0-9_-]{1,64}.
	ErrInvalidName = errors.New("index: invalid collection name")
	// ErrInvalidItem: an item that fails validation (id, vector, metadata).
	ErrInvalidItem = errors.New("index: invalid item")
	// ErrDimMismatch: a vector or query whose length differs from the collection's dims.
	ErrDimMismatch = errors.New("index: dimension mismatch")
	// ErrFingerprintMismatch: a collection opened or created with a different
	// model fingerprint or dims than it was built with.
	ErrFingerprintMismatch = errors.New("index: fingerprint mismatch")
	// ErrVersionConflict: a conditional write whose expected item version is
	// not the stored one (the item changed or was deleted since it was read).
	ErrVersionConflict = errors.New("index: version conflict")
	// ErrInvalidFilter: a filter expression or JSON filter that does not parse.
	ErrInvalidFilter = errors.New("index: invalid filter")
	// ErrInvalidQuery: search options outside the query limits (MaxK, MaxEf,
	// a min score outside -1..1) or a query vector that cannot be normalised.
	ErrInvalidQuery = errors.New("index: invalid query")

	// Lifecycle and storage.

	// ErrClosed: the DB was closed.
	ErrClosed = errors.New("index: closed")
	// ErrDropped: the collection was dropped (DropCollection) while the
	// caller still held it. Unlike ErrClosed the DB keeps serving.
	ErrDropped = errors.New("index: collection dropped")
	// ErrLocked: another process (a running server) holds the data file. bbolt allows one
	// process at a time, and its lock keeps read-only opens out too (shared and exclusive flocks
	// exclude each other), so the caller must go through that process.
	ErrLocked = errors.New("index: data file in use by another process")
	// ErrReadOnly: the data directory or file is not writable; reads keep working.
	ErrReadOnly = errors.New("index: read-only")
	// ErrFrozen: a client's write to a generation its alias does not name (a shadow being built,
	// or the previous generation kept for rollback); it is read-only but for the lifecycle mirror.
	ErrFrozen = errors.New("index: generation is read-only")
	// ErrInUse: dropping the generation an alias names.
	ErrInUse = errors.New("index: collection in use")
	// ErrStorage: a write to bbolt failed (disk full, I/O error); the wrapped
	// error names the cause. In-memory state is unchanged; reads keep working.
	ErrStorage = errors.New("index: storage error")
	// ErrStaleApplied: a change recorded with a log position at or below the one already applied
	// (PutApplied and friends); nothing was written. It comes wrapped in ErrStorage.
	ErrStaleApplied = errors.New("index: log position already applied")
)
