package cluster

import (
	"errors"
	"strings"
)

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrUnavailable: the log did not acknowledge a write within the write budget (no quorum: a
	// minority partition, a cluster still forming, a leader election that did not finish). The
	// write may or may not have been stored; retrying it with the same MsgID is safe.
	ErrUnavailable = errors.New("cluster: mutation log unavailable")
	// ErrTooLarge: an encoded mutation exceeds the log's largest message.
	ErrTooLarge = errors.New("cluster: mutation too large")
	// ErrInvalidMutation: a mutation that cannot be encoded or a message that does not decode.
	ErrInvalidMutation = errors.New("cluster: invalid mutation")
	// ErrTruncated: the log no longer holds the messages a replica needs next (retention removed
	// them); the replica must be restored from a snapshot and is not served.
	ErrTruncated = errors.New("cluster: log truncated past the replica's position")
	// ErrClosed: the node or replica was closed.
	ErrClosed = errors.New("cluster: closed")
	// ErrConfig: invalid options.
	ErrConfig = errors.New("cluster: invalid options")
)

// ErrInvalidQuery: a search a shard refused (k out of range, a vector of other dims, a bad filter).
var ErrInvalidQuery = errors.New("cluster: invalid query")

// ErrNotCaughtUp: a read carrying a minimum sequence (min_seq) found no replica that had applied
// its shard up to it in time.
var ErrNotCaughtUp = errors.New("cluster: replica not caught up")

// reason is err's message without sentinel's prefix: the part worth sending to another node,
// which wraps it in the sentinel again.
func reason(err, sentinel error) string {
	return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
}
