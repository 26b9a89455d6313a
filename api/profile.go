package api

import (
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/lifecycle"
)

// withProfileFor returns e bound to the profile under which it makes vectors of fingerprint fp
// (e itself for its default profile), or false when it makes none.
func withProfileFor(e Embedder, fp string) (Embedder, bool) {
	return lifecycle.WithProfileFor(e, fp)
}

// storedSource is the lifecycle's source hook: a rebuild embeds an item from its stored source
// rendition (limits.source_size) when it has one, from its thumbnail otherwise.
func storedSource(col *index.Collection, id string) ([]byte, bool) {
	b, err := col.Source(id)
	return b, err == nil && len(b) > 0
}
