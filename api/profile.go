package api

import (
	"github.com/lookalike/lookalike/lifecycle"
)

// withProfileFor returns e bound to the profile under which it makes vectors of fingerprint fp
// (e itself for its default profile), or false when it makes none.
func withProfileFor(e Embedder, fp string) (Embedder, bool) {
	return lifecycle.WithProfileFor(e, fp)
}
