package gatehttp

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// TestReadmeReasonTable keeps the table of reason codes in
// docs/security-engineers.md equal to how a call refused for each
// code in reason.Builtin is answered. Run with TOKENGATE_UPDATE_README=1 to rewrite the
// table.
func TestReadmeReasonTable(t *testing.T) {
	t.Parallel()
	var rows strings.Builder
	rows.WriteString("| reason | status | `WWW-Authenticate` | means |\n|---|---|---|---|\n")
	for _, c := range reason.Builtin {
		res := gateway.Result{Outcome: gateway.Deny, Refusal: reason.OfCall([]string{c.Name})}
		if c.Class == reason.Unavailable {
			res.Outcome = gateway.Error
		}
		h := http.Header{}
		answer := SetRefusalHeaders(h, res)
		challenge := "none"
		if v := h.Get("WWW-Authenticate"); v != "" {
			challenge = "`" + v + "`"
		}
		if h.Get("Retry-After") != "" {
			challenge += ", `Retry-After: " + h.Get("Retry-After") + "`"
		}
		fmt.Fprintf(&rows, "| `%s` | %d | %s | %s |\n", c.Name, answer.Status, challenge, c.Means)
	}
	const begin, end = "<!-- reasons:begin -->\n", "<!-- reasons:end -->"
	file, readme := markedDoc(t, begin, end)
	a, b := strings.Index(string(readme), begin), strings.Index(string(readme), end)
	if got := string(readme[a+len(begin) : b]); got != rows.String() {
		if os.Getenv("TOKENGATE_UPDATE_README") == "1" {
			updated := string(readme[:a+len(begin)]) + rows.String() + string(readme[b:])
			if err := os.WriteFile(file, []byte(updated), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("%s: the reason table differs from the handler; want:\n%s", file, rows.String())
	}
}

// markedDoc returns the doc holding the markers, README.md or a guide in
// docs/ (the docs move between them), and its text.
func markedDoc(t *testing.T, begin, end string) (string, []byte) {
	t.Helper()
	guides, _ := filepath.Glob("../../docs/*.md")
	for _, f := range append([]string{"../../README.md"}, guides...) {
		raw, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(raw), begin) && strings.Contains(string(raw), end) {
			return f, raw
		}
	}
	t.Fatal("neither README.md nor docs/*.md holds the reasons table markers")
	return "", nil
}
