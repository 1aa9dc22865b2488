package reason

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// docTables are the tables rendered from the lists, by their markers.
var docTables = []struct {
	marker string
	codes  []Code
}{
	{"management-reasons", Management},
	{"identity-reasons", Identity},
	{"exchange-reasons", Exchange},
	{"console-reasons", Console},
	{"leaks-reasons", Leaks},
}

// TestDocsTablesAreTheLists keeps each docs table of reason codes equal to
// Markdown of its list, wherever the docs keep it: README.md or a guide
// in docs/ holding the marker comments. Run with TOKENGATE_UPDATE_DOCS=1
// to rewrite the tables.
func TestDocsTablesAreTheLists(t *testing.T) {
	for _, d := range docTables {
		begin, end := "<!-- "+d.marker+":begin -->\n", "<!-- "+d.marker+":end -->"
		file, text := FindMarked(t, "../..", begin, end)
		a, b := strings.Index(text, begin)+len(begin), strings.Index(text, end)
		want := Markdown(d.codes)
		if text[a:b] == want {
			continue
		}
		if os.Getenv("TOKENGATE_UPDATE_DOCS") == "1" {
			if err := os.WriteFile(file, []byte(text[:a]+want+text[b:]), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s: the %s table differs from the list; want:\n%s", file, d.marker, want)
	}
}

// FindMarked returns the file under root (README.md or docs/*.md) that
// holds the begin and end markers, and its text.
func FindMarked(t testing.TB, root, begin, end string) (file, text string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	for _, f := range append([]string{filepath.Join(root, "README.md")}, files...) {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := string(raw)
		if a, b := strings.Index(s, begin), strings.Index(s, end); a >= 0 && b > a {
			return f, s
		}
	}
	t.Fatalf("no README.md or docs/*.md holds the markers %q", strings.TrimSpace(begin))
	return "", ""
}

func TestEveryListedCodeIsDeclaredOnce(t *testing.T) {
	for _, list := range [][]Code{Builtin, Management, Identity, Exchange} {
		seen := map[string]bool{}
		for _, c := range list {
			if seen[c.Name] {
				t.Errorf("%s listed twice in one list", c.Name)
			}
			seen[c.Name] = true
			if c.Means == "" || int(c.Class) >= len(classStatus) {
				t.Errorf("%s: no meaning, or a class without a status", c.Name)
			}
		}
	}
}

func TestClassStatus(t *testing.T) {
	for c, want := range map[Class]int{Forbidden: 403, Invalid: 401, Absent: 401, BadRequest: 400, Unavailable: 503,
		NotFound: 404, Conflict: 409, Gone: 410, TooLarge: 413, UnsupportedMedia: 415, MethodNotAllowed: 405, TooManyRequests: 429, Internal: 500} {
		if got := c.Status(); got != want {
			t.Errorf("class %d answers %d, want %d", c, got, want)
		}
	}
	if New(SelfApproval, "").Class != Forbidden || New(TokenNotFound, "").Class != NotFound || New(IssuerUnavailable, "").Class != Unavailable {
		t.Error("New does not take the declared class")
	}
}
