package reason

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// codeArgument is, per function that takes a reason code as a string,
// which argument holds it. A code not yet declared is caught only there;
// a declared one is caught anywhere (below).
var codeArgument = map[string]int{
	"invalid": 0, "New": 0, "Newf": 0, "refuse": 0, "badExchange": 1,
	"fail": 4, "jsonError": 2,
}

// TestNoCodeIsALiteral keeps codes declared once: every source file of
// the module (tests and this package aside) names a code by its constant,
// never by a string literal that could drift from the list (and from the
// docs and the metrics). It refuses a literal that spells a declared code
// wherever it stands, a literal in a Code field, and a literal where a
// function of codeArgument takes its code.
func TestNoCodeIsALiteral(t *testing.T) {
	codes := map[string]bool{}
	for _, c := range All() {
		codes[c.Name] = true
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	scanned := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") || strings.HasPrefix(rel, "internal/reason/") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		scanned++
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if s, err := strconv.Unquote(n.Value); n.Kind == token.STRING && err == nil && codes[s] {
					t.Errorf("%s: the code %q as a literal; use its constant in internal/reason", fset.Position(n.Pos()), s)
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Code" && isString(n.Value) {
					t.Errorf("%s: a code as a literal", fset.Position(n.Pos()))
				}
			case *ast.CallExpr:
				name := ""
				switch fn := n.Fun.(type) {
				case *ast.Ident:
					name = fn.Name
				case *ast.SelectorExpr:
					if x, ok := fn.X.(*ast.Ident); ok && x.Name == "errors" {
						return true
					}
					name = fn.Sel.Name
				}
				if i, ok := codeArgument[name]; ok && i < len(n.Args) && isString(n.Args[i]) {
					t.Errorf("%s: %s takes a code as a literal", fset.Position(n.Pos()), name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 100 {
		t.Fatalf("scanned %d files from %s: not the module", scanned, root)
	}
}

func isString(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return e.Kind == token.STRING
	case *ast.BinaryExpr:
		return isString(e.X) || isString(e.Y)
	}
	return false
}
