package caddymodule

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/token"
)

// A client that sends its secret in the URL instead of the Authorization
// header is refused, and the secret reaches no log: the audit line's path
// has it redacted (plain, percent-encoded, and in a path refused as
// invalid, which is logged as sent), the query is never in the audit line,
// and the access log, filtered as the README says, drops it too. The
// env's cleanup scans every log for every issued secret.
func TestSecretInTheURLIsNeverLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	secret, _ := e.issue(billingReader(nil))
	redacted := "tg_" + token.Redacted
	for _, c := range []struct {
		name, path, audited string
		status              int
	}{
		{"in the path", "/billing/keys/" + secret, "/billing/keys/" + redacted, http.StatusUnauthorized},
		{"percent-encoded", "/billing/enc/tg%5F" + secret[3:], "/billing/enc/tg_" + token.Redacted, http.StatusUnauthorized},
		{"in an invalid path", "/billing/bad/%2e%2e/" + secret, "/billing/bad/%2e%2e/" + redacted, http.StatusBadRequest},
		{"in the query", "/billing/query?token=" + secret, "/billing/query", http.StatusUnauthorized},
		{"upper-case prefix", "/billing/upper/TG_" + secret[3:], "/billing/upper/TG_" + token.Redacted, http.StatusUnauthorized},
		{"split by an encoded zero-width space", "/billing/split/" + secret[:15] + "%E2%80%8B" + secret[15:], "/billing/split/" + redacted, http.StatusUnauthorized},
		{"split in an invalid path", "/billing/bad/%2e%2e/Tg_" + secret[3:15] + "%C2%AD" + secret[15:], "/billing/bad/%2e%2e/Tg_" + token.Redacted, http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := call(t, "GET", e.gateURL+c.path); got.status != c.status {
				t.Fatalf("GET %s: %d, want %d", c.path, got.status, c.status)
			}
			line := e.auditFor(c.audited)
			if line["decision"] != "deny" {
				t.Errorf("audit decision %v, want deny", line["decision"])
			}
		})
	}
	for _, l := range e.auditLines() {
		if p, _ := l["path"].(string); strings.Contains(p, secret[3:15]) || strings.Contains(p, secret[15:30]) {
			t.Errorf("audit line path %q holds the secret", p)
		}
	}
}
