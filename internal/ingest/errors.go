package ingest

import "errors"

// Sentinel errors. Callers branch on them with errors.Is; the returned errors wrap them with the
// item or line they concern. Errors from embed (undecodable images) and index (invalid items,
// version conflicts, storage) pass through wrapped, so callers classify those by their own
// sentinels.
var (
	// ErrManifest reports a manifest that cannot be used; the message names the line.
	ErrManifest = errors.New("invalid manifest")
	// ErrDuplicate: an item refused because it is an exact or near duplicate of a stored item
	// (DuplicateReject). The Result's Duplicate names that item.
	ErrDuplicate = errors.New("duplicate of a stored item")
	// ErrDuplicateID: an item whose id an earlier item of the same call (batch, manifest, folder
	// list) already uses. The earlier one is stored; the later ones are refused rather than
	// silently folded into it.
	ErrDuplicateID = errors.New("id given more than once")
)
