// Package archtest holds tests of the project's shape: which package may import which, how large a
// file or a function may grow, and a lint of the container image's Dockerfile and .dockerignore.
// They fail when an arrow the design forbids appears.
package archtest

import (
	"bufio"
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/lookalike/lookalike"

// repoRoot is two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// deps lists the module packages that pkg imports, directly or not.
func deps(t *testing.T, root, pkg string) map[string]bool {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./"+pkg)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	set := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		p := sc.Text()
		if p != module+"/"+pkg {
			set[p] = true
		}
	}
	return set
}

// TestImportArrows: dependencies point inward (cmd → api → {intel, quality, ingest, edit, cluster} →
// {embed, index}); only api knows HTTP as a server; embed and index never import each other; the
// config package stays free of cgo; the Go client (client/) imports nothing of the server, so an
// integrator's program links none of it.
func TestImportArrows(t *testing.T) {
	root := repoRoot(t)
	// Only cluster may link NATS: the single-node packages stay free of it.
	const nats, natsServer = "github.com/nats-io/nats.go", "github.com/nats-io/nats-server/v2/server"
	rules := []struct {
		pkg    string
		forbid []string
	}{
		{"index", []string{"embed", "api", "intel", "quality", "internal/ingest", "cluster", nats, natsServer, "github.com/gofiber/fiber/v2"}},
		{"embed", []string{"index", "api", "intel", "quality", "internal/ingest", "cluster", nats, "github.com/gofiber/fiber/v2"}},
		{"intel", []string{"api", "quality", "github.com/gofiber/fiber/v2"}},
		{"quality", []string{"api", "intel", "github.com/gofiber/fiber/v2"}},
		{"internal/ingest", []string{"api", "quality", "github.com/gofiber/fiber/v2"}},
		{"internal/edit", []string{"api", "embed", "intel", "quality", "internal/ingest", "github.com/gofiber/fiber/v2"}},
		{"client", []string{"api", "index", "embed", "intel", "quality", "internal/ingest", "internal/edit", "internal/config", "cluster", nats, "github.com/gofiber/fiber/v2"}},
		{"internal/config", []string{"embed", "api", "intel", "quality", "internal/ingest", "cluster", nats}},
		// cluster sits beside ingest, below api: it applies the log through index's write path and
		// knows nothing of HTTP, embedding or catalog intelligence.
		{"cluster", []string{"api", "embed", "intel", "quality", "internal/ingest", "lifecycle", "github.com/gofiber/fiber/v2"}},
		{"eval", []string{"api", "github.com/gofiber/fiber/v2"}},
		{"lifecycle", []string{"api", "intel", "quality", "github.com/gofiber/fiber/v2"}},
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(root, r.pkg)); err != nil {
				t.Fatalf("package %s is missing: %v", r.pkg, err)
			}
			got := deps(t, root, r.pkg)
			for _, f := range r.forbid {
				full := f
				if !strings.Contains(f, ".") {
					full = module + "/" + f
				}
				if got[full] {
					t.Errorf("%s imports %s (directly or through another package)", r.pkg, f)
				}
			}
		})
	}
}

// TestCLIImportsAPIOnlyToServe: the command line reaches catalog features through their own
// packages; api is imported only by the files that serve (serve.go, serve_*.go).
func TestCLIImportsAPIOnlyToServe(t *testing.T) {
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "cmd", "lookalike", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || filepath.Base(f) == "serve.go" || strings.HasPrefix(filepath.Base(f), "serve_") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			if strings.Trim(imp.Path.Value, `"`) == module+"/api" {
				t.Errorf("%s imports api; only serve.go and serve_*.go (the serve command's wiring) may", filepath.Base(f))
			}
		}
	}
}

// TestSizes: no file over maxFileLines and no function over maxFuncLines outside tests, unless
// its comment says why it must be one piece (the phrase "one piece").
func TestSizes(t *testing.T) {
	const maxFileLines, maxFuncLines = 800, 100
	root := repoRoot(t)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		file, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if n := fset.File(file.Pos()).LineCount(); n > maxFileLines && !saysOnePiece(file.Doc) {
			t.Errorf("%s has %d lines (max %d)", rel, n, maxFileLines)
		}
		for _, decl := range file.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
			if lines > maxFuncLines && !saysOnePiece(fn.Doc) {
				t.Errorf("%s: func %s has %d lines (max %d)", rel, fn.Name.Name, lines, maxFuncLines)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func saysOnePiece(doc *ast.CommentGroup) bool {
	return doc != nil && strings.Contains(doc.Text(), "one piece")
}
