package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/tokengate/caddy-tokengate"
)

const reference = "caddyfile.md"

// TestCaddyfileReferenceAdapts runs every caddyfile block of the reference
// through Caddy's Caddyfile adapter with tokengate's modules registered:
// an option the parsers refuse (misspelt, removed, in the wrong block)
// fails here.
func TestCaddyfileReferenceAdapts(t *testing.T) {
	blocks := caddyfileBlocks(t, reference)
	if len(blocks) == 0 {
		t.Fatalf("%s has no caddyfile blocks", reference)
	}
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	for _, b := range blocks {
		if _, _, err := adapter.Adapt([]byte(b.text), map[string]any{"filename": b.name()}); err != nil {
			t.Errorf("%s: the Caddyfile adapter refuses it: %v", b.name(), err)
		}
	}
}

// TestCaddyfileReferenceIsComplete fails when a parser accepts something
// the reference does not show. What the parsers accept is read from the
// module's source: every function that takes a *caddyfile.Dispenser (or an
// httpcaddyfile.Helper) contributes the string constants of its switch
// cases (its subdirectives), and the reference must have one block whose
// subdirectives are exactly those; every name registered with
// httpcaddyfile (directives, global options) and every module ID under
// caddy.logging.writers and tokengate.stores must appear in a block.
func TestCaddyfileReferenceIsComplete(t *testing.T) {
	parsers, names := caddyfileParsers(t)
	if len(parsers) == 0 || len(names) == 0 {
		t.Fatal("no Caddyfile parsers found in the module's source")
	}
	documented := map[string]bool{} // every word of every block
	var sets [][]string             // the subdirectives of every block
	for _, b := range caddyfileBlocks(t, reference) {
		words, blockSets := b.structure(t)
		for _, w := range words {
			documented[w] = true
		}
		sets = append(sets, blockSets...)
	}
	for _, p := range parsers {
		if !slices.ContainsFunc(sets, func(s []string) bool { return slices.Equal(s, p.keywords) }) {
			t.Errorf("%s accepts %s, but no block of %s lists exactly these subdirectives",
				p.where, strings.Join(p.keywords, " "), reference)
		}
	}
	for _, n := range names {
		if !documented[n.name] {
			t.Errorf("%s registers %q, which no block of %s shows", n.where, n.name, reference)
		}
	}
}

// fence is one ```caddyfile block of a Markdown file.
type fence struct {
	file string
	line int // of the opening ```
	text string
}

func (f fence) name() string { return f.file + ":" + strconv.Itoa(f.line) }

var fenceOpen = regexp.MustCompile("^```caddyfile\\s*$")

func caddyfileBlocks(t *testing.T, file string) []fence {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []fence
	lines := strings.Split(string(src), "\n")
	for i := 0; i < len(lines); i++ {
		if !fenceOpen.MatchString(lines[i]) {
			continue
		}
		start := i
		var body []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		blocks = append(blocks, fence{file: file, line: start + 1, text: strings.Join(body, "\n") + "\n"})
	}
	return blocks
}

// structure tokenizes the block as Caddy does and returns every word in it,
// and for every { } block the sorted, distinct first words of its lines:
// the subdirectives it lists.
func (f fence) structure(t *testing.T) (words []string, sets [][]string) {
	t.Helper()
	tokens, err := caddyfile.Tokenize([]byte(f.text), f.name())
	if err != nil {
		t.Fatalf("%s: %v", f.name(), err)
	}
	stack := []map[string]bool{{}}
	for i, tok := range tokens {
		words = append(words, tok.Text)
		switch {
		case tok.Text == "{":
			stack = append(stack, map[string]bool{})
		case tok.Text == "}":
			if len(stack) == 1 {
				t.Fatalf("%s: unbalanced }", f.name())
			}
			sets = append(sets, sortedKeys(stack[len(stack)-1]))
			stack = stack[:len(stack)-1]
		case i == 0 || tokens[i-1].Line != tok.Line || tokens[i-1].Text == "{":
			stack[len(stack)-1][tok.Text] = true
		}
	}
	return words, sets
}

// unmarshaler is one Caddyfile unmarshaling function and the subdirectives its
// switch statements accept.
type unmarshaler struct {
	where    string
	keywords []string
}

// registered is a directive, global option or module name a user types.
type registered struct {
	where, name string
}

// caddyfileParsers reads the module's non-test Go files (nested modules,
// such as examples/memstore, are their own) for the Caddyfile parsers and
// the names registered with Caddy.
func caddyfileParsers(t *testing.T) ([]unmarshaler, []registered) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	var parsers []unmarshaler
	var names []registered
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); path != root && err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				if takesDispenser(n) {
					if kw := caseStrings(n.Body); len(kw) > 0 {
						parsers = append(parsers, unmarshaler{where: rel + " " + funcName(n), keywords: kw})
					}
				}
			case *ast.CallExpr:
				if name, ok := registeredName(n); ok {
					names = append(names, registered{where: rel, name: name})
				}
			case *ast.KeyValueExpr:
				if name, ok := moduleName(n); ok {
					names = append(names, registered{where: rel, name: name})
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return parsers, names
}

// takesDispenser reports whether fn reads Caddyfile tokens: it takes a
// *caddyfile.Dispenser or an httpcaddyfile.Helper (which embeds one).
func takesDispenser(fn *ast.FuncDecl) bool {
	for _, p := range fn.Type.Params.List {
		typ := p.Type
		if star, ok := typ.(*ast.StarExpr); ok {
			typ = star.X
		}
		sel, ok := typ.(*ast.SelectorExpr)
		if !ok {
			continue
		}
		pkg, ok := sel.X.(*ast.Ident)
		if ok && (pkg.Name == "caddyfile" && sel.Sel.Name == "Dispenser" || pkg.Name == "httpcaddyfile" && sel.Sel.Name == "Helper") {
			return true
		}
	}
	return false
}

// caseStrings returns the sorted, distinct string constants of the case
// clauses of every switch in body, the empty string left out.
func caseStrings(body *ast.BlockStmt) []string {
	seen := map[string]bool{}
	ast.Inspect(body, func(n ast.Node) bool {
		if cc, ok := n.(*ast.CaseClause); ok {
			for _, e := range cc.List {
				if s, ok := stringLit(e); ok && s != "" {
					seen[s] = true
				}
			}
		}
		return true
	})
	return sortedKeys(seen)
}

func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	recv := fn.Recv.List[0].Type
	if star, ok := recv.(*ast.StarExpr); ok {
		recv = star.X
	}
	if id, ok := recv.(*ast.Ident); ok {
		return "(" + id.Name + ")." + fn.Name.Name
	}
	return fn.Name.Name
}

// registeredName matches httpcaddyfile.RegisterGlobalOption("name", ...),
// RegisterHandlerDirective and RegisterDirective.
func registeredName(call *ast.CallExpr) (string, bool) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || len(call.Args) == 0 {
		return "", false
	}
	if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "httpcaddyfile" {
		return "", false
	}
	switch sel.Sel.Name {
	case "RegisterGlobalOption", "RegisterHandlerDirective", "RegisterDirective":
		return stringLit(call.Args[0])
	}
	return "", false
}

// moduleName matches ID: "caddy.logging.writers.<name>" and
// ID: "tokengate.stores.<name>", the modules a Caddyfile names by <name>.
func moduleName(kv *ast.KeyValueExpr) (string, bool) {
	if key, ok := kv.Key.(*ast.Ident); !ok || key.Name != "ID" {
		return "", false
	}
	id, ok := stringLit(kv.Value)
	if !ok {
		return "", false
	}
	for _, ns := range []string{"caddy.logging.writers.", "tokengate.stores."} {
		if name, ok := strings.CutPrefix(id, ns); ok {
			return name, true
		}
	}
	return "", false
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
