package ui_test

import (
	"io/fs"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/lookalike/lookalike/ui"
)

func readAsset(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(ui.Assets(), name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func assetsWithExt(t *testing.T, ext string) []string {
	t.Helper()
	var out []string
	err := fs.WalkDir(ui.Assets(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ext) {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no %s files in the assets", ext)
	}
	return out
}

// TestAssetsLayout checks what the server relies on: index.html at the root, and every file that
// the page, a module or the stylesheet refers to is embedded.
func TestAssetsLayout(t *testing.T) {
	html := readAsset(t, "index.html")
	type ref struct{ from, to string }
	var refs []ref
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"#:]+)"`).FindAllStringSubmatch(html, -1) {
		refs = append(refs, ref{"index.html", m[1]})
	}
	for _, js := range assetsWithExt(t, ".js") {
		for _, m := range regexp.MustCompile(`(?m)^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'`).FindAllStringSubmatch(readAsset(t, js), -1) {
			target := m[1] + m[2]
			if !strings.HasPrefix(target, "./") && !strings.HasPrefix(target, "../") {
				t.Errorf("%s imports %q: only relative imports work without a bundler", js, target)
				continue
			}
			refs = append(refs, ref{js, path.Join(path.Dir(js), target)})
		}
	}
	for _, css := range assetsWithExt(t, ".css") {
		for _, m := range regexp.MustCompile(`url\("?([^")]+)"?\)`).FindAllStringSubmatch(readAsset(t, css), -1) {
			if !strings.HasPrefix(m[1], "data:") {
				refs = append(refs, ref{css, path.Join(path.Dir(css), m[1])})
			}
		}
	}
	if len(refs) < 10 {
		t.Fatalf("found only %d references; the patterns no longer match the sources", len(refs))
	}
	for _, r := range refs {
		if _, err := fs.Stat(ui.Assets(), path.Clean(r.to)); err != nil {
			t.Errorf("%s refers to %s, which is not embedded: %v", r.from, r.to, err)
		}
	}
}

// htmlViolations lists what the CSP would block in a page: inline scripts, style attributes and
// elements, inline event handlers, javascript: URLs, and anything loaded from another origin.
func htmlViolations(html string) []string {
	var out []string
	for _, tag := range regexp.MustCompile(`(?is)<script\b[^>]*>`).FindAllString(html, -1) {
		if !regexp.MustCompile(`(?i)\ssrc=`).MatchString(tag) {
			out = append(out, "inline script: "+tag)
		}
	}
	rules := []struct {
		name string
		re   *regexp.Regexp
	}{
		{"style attribute", regexp.MustCompile(`(?i)<[^>]+\sstyle=`)},
		{"style element", regexp.MustCompile(`(?i)<style\b`)},
		{"inline event handler", regexp.MustCompile(`(?i)<[^>]+\son[a-z]+=`)},
		{"javascript: URL", regexp.MustCompile(`(?i)javascript:`)},
		{"remote resource", regexp.MustCompile(`(?i)(?:src|href)="(?:https?:)?//`)},
	}
	for _, r := range rules {
		for _, m := range r.re.FindAllString(html, -1) {
			out = append(out, r.name+": "+m)
		}
	}
	return out
}

// jsViolations lists HTML sinks, string evaluation, style attributes and remote URLs in a module.
func jsViolations(src string) []string {
	var out []string
	rules := []struct {
		name string
		re   *regexp.Regexp
	}{
		{"HTML sink", regexp.MustCompile(`\.(?:innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write`)},
		{"eval", regexp.MustCompile(`\beval\(|new Function\(`)},
		{"style attribute", regexp.MustCompile(`setAttribute\(\s*['"]style['"]|\.cssText\b|['"]style['"]\s*:`)},
		{"remote URL", regexp.MustCompile(`['"]https?://[^'"]*`)},
	}
	for _, r := range rules {
		for _, m := range r.re.FindAllString(src, -1) {
			if strings.HasPrefix(m[1:], "http://www.w3.org/") {
				continue // an XML namespace name, never fetched
			}
			out = append(out, r.name+": "+m)
		}
	}
	return out
}

// TestCSPCompliance checks the rules the server's Content-Security-Policy enforces, and the rule
// that data goes into the page as text, on the files themselves: a violation fails here even on a
// machine without a browser.
func TestCSPCompliance(t *testing.T) {
	for _, v := range htmlViolations(readAsset(t, "index.html")) {
		t.Errorf("index.html: %s", v)
	}
	for _, js := range assetsWithExt(t, ".js") {
		for _, v := range jsViolations(readAsset(t, js)) {
			t.Errorf("%s: %s", js, v)
		}
	}
	for _, css := range assetsWithExt(t, ".css") {
		if m := regexp.MustCompile(`@import|url\(\s*["']?(?:https?:)?//`).FindString(readAsset(t, css)); m != "" {
			t.Errorf("%s loads a remote or imported stylesheet: %q", css, m)
		}
	}
}

// TestCSPRulesCatchViolations keeps TestCSPCompliance honest: its checks must reject the markup
// and code they exist for, and accept what the app uses.
func TestCSPRulesCatchViolations(t *testing.T) {
	for _, bad := range []string{
		`<script>alert(1)</script>`, `<script type="module">import "./x.js"</script>`,
		`<div style="color:red">`, `<a href="#" onclick="x()">`, `<script src="https://cdn.example/x.js"></script>`,
	} {
		if len(htmlViolations(bad)) == 0 {
			t.Errorf("htmlViolations accepts %q", bad)
		}
	}
	if v := htmlViolations(`<script type="module" src="js/app.js"></script><link rel="stylesheet" href="css/app.css">`); len(v) > 0 {
		t.Errorf("htmlViolations rejects the app's own tags: %v", v)
	}
	for _, bad := range []string{`el.innerHTML = name`, `el.setAttribute('style', 'x')`, `h('div', {'style': s})`, `eval(code)`, `fetch('https://cdn.example/x')`} {
		if len(jsViolations(bad)) == 0 {
			t.Errorf("jsViolations accepts %q", bad)
		}
	}
	if v := jsViolations(`el.textContent = name; fill.style.width = '10%';`); len(v) > 0 {
		t.Errorf("jsViolations rejects text and CSSOM writes: %v", v)
	}
}
