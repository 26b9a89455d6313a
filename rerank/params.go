package rerank

import (
	"fmt"
	"strings"
)

// Params of k-reciprocal re-ranking. The defaults are the paper's (Zhong et al. 2017, Market-1501:
// k1 20, k2 6, lambda 0.3), not tuned on Lookalike's benchmarks; the row scale is the authors'
// code's, with a sample of 1024 (adopted by the rule in docs/quality.md, on data other than Oxford).
type Params struct {
	// K1 is the length of each item's neighbour list and of the k-reciprocal neighbourhood.
	K1 int
	// K2 is the local query expansion: a row is averaged over the item and its K2-1 nearest.
	K2 int
	// Lambda weighs the original distance against the Jaccard distance.
	Lambda float32
	// RowScale is how the original distance d enters the Gaussian weights exp(-d) of the rows and
	// the final lambda*d. 0: d = 1 - cosine, half the squared Euclidean distance of unit
	// vectors, i.e. the squared distance divided by its bound 2 (unit vectors with non-negative
	// components). n > 0: as the authors' re_ranking, which divides each squared distance by the
	// largest one in its row: d / m, m the row's largest 1 - cosine to a sample of up to n items
	// (the whole collection when it has at most n; see State.Rebuild for how the sample is kept).
	RowScale int
}

// MaxRowScale bounds Params.RowScale: each row's scale costs that many distances.
const MaxRowScale = 4096

// Defaults from the paper.
const (
	DefaultK1     = 20
	DefaultK2     = 6
	DefaultLambda = 0.3
	// DefaultRowScale samples 1024 items for each row's largest distance (Params.RowScale).
	DefaultRowScale = 1024
	// DefaultQE is how many top results average query expansion adds to the query (Chum et al.
	// 2007 average expansion; 2 is where the prototype measured it).
	DefaultQE = 2
)

// DefaultParams are K1 20, K2 6, Lambda 0.3, RowScale 1024.
func DefaultParams() Params {
	return Params{K1: DefaultK1, K2: DefaultK2, Lambda: DefaultLambda, RowScale: DefaultRowScale}
}

func (p Params) check() error {
	if p.K1 < 2 || p.K1 > 200 || p.K2 < 1 || p.K2 > p.K1 || !(p.Lambda >= 0 && p.Lambda <= 1) || p.RowScale < 0 || p.RowScale > MaxRowScale {
		return fmt.Errorf("%w: k1 %d (2..200), k2 %d (1..k1), lambda %v (0..1), row scale %d (0..%d)", ErrParams, p.K1, p.K2, p.Lambda, p.RowScale, MaxRowScale)
	}
	return nil
}

// half is the paper's round(k1/2), the neighbourhood of the expansion step.
func (p Params) half() int { return (p.K1 + 1) / 2 }

// Mode is a per-request re-ranking choice.
type Mode uint8

// Modes. The zero value is ModeDefault: the caller's default applies.
const (
	ModeDefault Mode = iota
	ModeNone         // plain nearest neighbours
	ModeQE           // average query expansion over the top DefaultQE
	ModeKR           // k-reciprocal re-ranking
	ModeQEKR         // query expansion, then k-reciprocal re-ranking of the expanded query
)

// Modes lists the explicit modes in their wire spelling.
var Modes = []Mode{ModeNone, ModeQE, ModeKR, ModeQEKR}

func (m Mode) String() string {
	switch m {
	case ModeDefault:
		return "default"
	case ModeNone:
		return "none"
	case ModeQE:
		return "qe"
	case ModeKR:
		return "kr"
	case ModeQEKR:
		return "qe+kr"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// QE reports whether the mode expands the query.
func (m Mode) QE() bool { return m == ModeQE || m == ModeQEKR }

// KR reports whether the mode re-ranks k-reciprocally.
func (m Mode) KR() bool { return m == ModeKR || m == ModeQEKR }

// ParseMode reads none, qe, kr or qe+kr (case-insensitive; "" is ModeDefault; "off" is none and a
// space for the + of a URL that was not escaped is accepted).
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return ModeDefault, nil
	case "none", "off":
		return ModeNone, nil
	case "qe":
		return ModeQE, nil
	case "kr":
		return ModeKR, nil
	case "qe+kr", "qe kr", "kr+qe":
		return ModeQEKR, nil
	}
	return ModeDefault, fmt.Errorf("%w: %q (want none, qe, kr or qe+kr)", ErrMode, s)
}

// MarshalText writes the wire spelling.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads what ParseMode reads.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
