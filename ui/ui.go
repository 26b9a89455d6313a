// Package ui owns Lookalike's web interface: a single-page app of plain ES modules and CSS files,
// embedded in the binary. It only serves files; the api package mounts Assets at "/" and owns
// routing, headers and the Content-Security-Policy.
//
// The app routes on the URL hash (#/search, #/item/{collection}/{id}, #/catalog, #/status) and
// talks only to the /v1 REST API, so the server needs no fallback route for deep links. A search
// has a URL that can be reloaded and shared: #/search?c={collection}&item={id} for a search by
// item, #/search?c={collection}&photo={photo_id}&crop=x,y,w,h for a photo the server keeps, each
// with f={filter JSON} when filtered.
//
// # Development
//
// No build step: edit the files and reload. The browser tests in this package build cmd/lookalike,
// start `lookalike serve` on a free port with a fresh data folder, seed it with UKBench photos and
// drive headless chromium; on failure they save screenshots under testdata/screenshots/ at the
// repository root. LOOKALIKE_UI_SHOTS=real (or =mock, for a canned catalog without the server)
// makes TestScreenshots tour every page at desktop, phone and dark-mode sizes, and
// LOOKALIKE_UI_MOCK=1 with -run TestMockServe serves the UI against the mock API for a browser.
//
// # Caveats
//
// The pages run under a strict CSP (script-src 'self'; style-src 'self'): no inline scripts, no
// inline event handlers and no style attributes in HTML. Scripts put every value that comes from
// the API into the page through textContent or attributes, never innerHTML, so catalog metadata
// cannot inject markup. The tests in this package check both rules on the embedded files.
package ui

import (
	"embed"
	"io/fs"
)

//go:embed index.html icon.svg css js
var assets embed.FS

// Assets returns the static root: index.html at its top, scripts under js/ and styles under css/.
func Assets() fs.FS { return assets }
