package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/embed"
	"github.com/lookalike/lookalike/index"
	"github.com/lookalike/lookalike/intel"
	"github.com/lookalike/lookalike/internal/config"
)

// Error messages speak to the client: no internal package names ("index: ...") and no grammar
// slips from formatted words ("a exact duplicate").
func TestErrorMessagesHaveNoPackagePrefixes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: item %q in %q is at version 3, expected 2", index.ErrVersionConflict, "a", "default"),
			`version conflict: item "a" in "default" is at version 3, expected 2`},
		{fmt.Errorf("%w: %w: item %q: vector has 3 dims", index.ErrInvalidItem, index.ErrDimMismatch, "a"),
			`invalid item: dimension mismatch: item "a": vector has 3 dims`},
		{fmt.Errorf("%w: bad crop", embed.ErrBadCrop), "bad crop rectangle: bad crop"},
		{fmt.Errorf("%w: tier x", intel.ErrInvalidTier), "invalid tier: tier x"},
		{fmt.Errorf("%w: unexpected )", index.ErrInvalidFilter), "invalid filter: unexpected )"},
	} {
		if got := classify(tc.err).Message; got != tc.want {
			t.Errorf("classify(%v).Message = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestDuplicateMessageGrammar(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) { c.Intel.OnDuplicate = "reject" })
	orig := photo(t, ukName(4))
	if r := ts.addBytes(t, "orig", orig, "", ""); r.status != http.StatusCreated {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		img  []byte
		tier string
	}{{orig, "an exact duplicate"}, {reencode(t, orig, 0.6, 70), "a near duplicate"}} {
		r := ts.addBytes(t, "copy", tc.img, "", "")
		var e struct{ Error Error }
		r.json(t, &e)
		if r.status != http.StatusConflict || !strings.Contains(e.Error.Message, `is `+tc.tier+` of "orig"`) ||
			strings.Contains(e.Error.Message, "ingest:") {
			t.Errorf("duplicate message %q (%d), want %q", e.Error.Message, r.status, tc.tier)
		}
	}
}
