package caddymodule

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

// brakeLines are the token.exchanged lines refused with rate_limited.
func (e *env) brakeLines() []map[string]any {
	var out []map[string]any
	for _, l := range e.auditLines() {
		if l["msg"] == "token.exchanged" && slices.Contains(anyStrings(l["reasons"]), "rate_limited") {
			out = append(out, l)
		}
	}
	return out
}

// A flood of anonymous exchange attempts from one address: past the limit
// each gets 429 rate_limited with Retry-After, and the audit trail gets
// one line for the first refusal and one summary for the rest, not a line
// each. The next window lets the address try again.
func TestTokenExchangeBrakesPerAddress(t *testing.T) {
	t.Parallel()
	op := oidcop.Start(t, oidcop.Options{})
	e := newEnv(t, envOptions{appOptions: "exchange_limit 3 1m\n\t\tworkload github " + op.Issuer() + " {\n\t\t\taudience " + gatewayAudience + "\n\t\t}"})
	o := loadOpenAPI(t)
	garbage := exchangeForm("eyJ.NOT-A-TOKEN.sig", "billing:read", "billing")

	for i := range 3 {
		if r := e.exchange(t, o, garbage); r.status != http.StatusBadRequest {
			t.Fatalf("attempt %d within the limit: %d %s", i+1, r.status, r.body)
		}
	}
	const flood = 20
	for i := range flood {
		r := e.exchange(t, o, garbage)
		if r.status != http.StatusTooManyRequests || r.reason != "rate_limited" || r.header.Get("Retry-After") == "" {
			t.Fatalf("attempt %d past the limit: %d %v %s", i+4, r.status, r.header, r.body)
		}
	}
	lines := e.brakeLines()
	if len(lines) != 1 || lines[0]["refused_count"] != 1.0 || lines[0]["client_ip"] != "127.0.0.1" {
		t.Fatalf("rate_limited lines during the flood %v, want one, for the first refusal", lines)
	}
	all := len(e.auditLines())

	e.advance(time.Minute)
	if r := e.exchange(t, o, garbage); r.status != http.StatusBadRequest {
		t.Fatalf("attempt in the next window: %d %s", r.status, r.body)
	}
	lines = e.brakeLines()
	if len(lines) != 2 || lines[1]["refused_count"] != float64(flood-1) || lines[1]["client_ip"] != "127.0.0.1" || lines[1]["actor"] != "anonymous" {
		t.Fatalf("rate_limited lines after the window %v, want a summary counting %d", lines, flood-1)
	}
	// The summary and the new attempt's own refusal: two more lines.
	if got := len(e.auditLines()); got != all+2 {
		t.Errorf("%d audit lines after the window, want %d", got, all+2)
	}
}
