package manage

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestOnePlaceWritesActionLines keeps the action trail in one place: no
// source file of the module but trail.go calls the audit logger's Action
// or ActionContext (internal/audit, which defines them, aside), and no
// package but this one builds an audit.Action line. An action line written
// elsewhere would escape the order and fields this package keeps.
func TestOnePlaceWritesActionLines(t *testing.T) {
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
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") || strings.HasPrefix(rel, "internal/audit/") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		scanned++
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if ok && (sel.Sel.Name == "Action" || sel.Sel.Name == "ActionContext") && rel != "internal/manage/trail.go" {
					t.Errorf("%s: writes an action line; write it through internal/manage (trail.go)", fset.Position(n.Pos()))
				}
			case *ast.CompositeLit:
				sel, ok := n.Type.(*ast.SelectorExpr)
				if ok && isIdent(sel.X, "audit") && sel.Sel.Name == "Action" && !strings.HasPrefix(rel, "internal/manage/") {
					t.Errorf("%s: builds an audit.Action; only internal/manage writes action lines", fset.Position(n.Pos()))
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

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}
