package ui_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// TestScreenshots tours every page at desktop and phone sizes and saves screenshots under
// testdata/screenshots/, for reviewing the look: against the mock API with
// LOOKALIKE_UI_SHOTS=mock, against the real server (seeded with UKBench) with LOOKALIKE_UI_SHOTS=real.
func TestScreenshots(t *testing.T) {
	mode := os.Getenv("LOOKALIKE_UI_SHOTS")
	var base, itemID, xss, photo, upload string
	switch mode {
	case "mock":
		base, itemID, xss = newMockServer(t).URL, "sku-1007", "xss-1"
		photo = filepath.Join(t.TempDir(), "query.jpg")
		if err := os.WriteFile(photo, drawThumb(0.1, 3), 0o644); err != nil {
			t.Fatal(err)
		}
		upload = photo
	case "real":
		s := startServer(t)
		base, itemID, xss, photo = s.URL, seedID(4), xssID, s.photo(3)
		// Upload a photo of an object the other tests do not use, under its own id.
		data, err := os.ReadFile(s.photo(4 * (seedGroups + 8)))
		if err != nil {
			t.Fatal(err)
		}
		upload = filepath.Join(t.TempDir(), "tour-upload.jpg")
		if err := os.WriteFile(upload, data, 0o644); err != nil {
			t.Fatal(err)
		}
	default:
		t.Skip("set LOOKALIKE_UI_SHOTS=mock or =real to take screenshots of every page")
	}
	for _, size := range []struct {
		name string
		w, h int64
		opts []chromedp.EmulateViewportOption
		dark bool
	}{
		{"desktop", 1280, 900, nil, false},
		{"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateScale(2), chromedp.EmulateMobile}, false},
		{"dark", 1280, 900, nil, true},
	} {
		t.Run(size.name, func(t *testing.T) {
			b := newBrowser(t, base)
			b.viewportOnly = size.name == "phone"
			b.do("viewport", 10*time.Second, chromedp.EmulateViewport(size.w, size.h, size.opts...))
			if size.dark {
				b.do("dark mode", 10*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
					_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
						Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
					})
					return err
				}))
			}
			b.open("#/search", "#search-drop")
			b.screenshot("search-empty")
			b.upload("#search-file", photo)
			b.wait("results", fmt.Sprintf("document.querySelectorAll(%q).length > 0", allCards), 10*time.Second)
			b.do("crop", 10*time.Second, chromedp.Evaluate[chromedp.Void](`(() => {
				const s = document.querySelector('.stage'); s.focus();
				s.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));
			})()`))
			b.wait("crop search", "document.querySelector('#results-summary').textContent.includes('region')", 10*time.Second)
			time.Sleep(500 * time.Millisecond)
			b.screenshot("search-results")
			b.open("#/item/default/"+itemID, "#item-meta dt")
			b.wait("similar", "document.querySelectorAll('#similar .card').length > 0", 10*time.Second)
			time.Sleep(500 * time.Millisecond)
			b.screenshot("item")
			b.open("#/item/default/"+xss, "#item-meta dt")
			b.screenshot("item-xss")
			b.open("#/catalog", "#catalog-items .card")
			b.upload("#upload-files", upload)
			b.wait("upload done", "document.querySelector('.upload-row[data-state=done]')", 10*time.Second)
			time.Sleep(500 * time.Millisecond)
			b.screenshot("catalog")
			b.open("#/status", "#status-tiles .tile")
			time.Sleep(300 * time.Millisecond)
			b.screenshot("status")
			b.open("#/search", allCards)
			txt := filepath.Join(t.TempDir(), "notes.txt")
			_ = os.WriteFile(txt, []byte("hello"), 0o644)
			b.upload("#search-file", txt)
			b.wait("error", "document.querySelector('#search-error .error-box')", 10*time.Second)
			b.screenshot("search-error")
			b.noConsoleProblems("the server responded with a status of 4")
		})
	}
}
