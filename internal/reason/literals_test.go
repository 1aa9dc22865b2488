package reason

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// codeArgument is, per function that takes a reason code, which argument
// holds it.
var codeArgument = map[string]int{
	"invalid": 0, "New": 0, "Newf": 0, "refuse": 0, "badExchange": 1,
	"WriteProblem": 2, "ExchangeRefused": 1, "fail": 4, "jsonError": 2,
}

// TestNoCodeIsALiteral keeps codes declared once: the packages that refuse
// name every code by its constant here, never by a string literal that
// could drift from the list (and from the docs and the metrics).
func TestNoCodeIsALiteral(t *testing.T) {
	fset := token.NewFileSet()
	for _, dir := range []string{"lifecycle", "manage", "mgmtapi", "identity", "console", "stepup", "ratelimit", "websession"} {
		files, _ := filepath.Glob(filepath.Join("..", dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool {
				switch n := n.(type) {
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
		}
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
