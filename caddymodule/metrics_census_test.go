package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/version"
)

// TestCensusGauges runs tokens into every common state through the real
// admin endpoint and management API, and reads Caddy's /metrics: the
// gauges count the store (tokens by state, expiring within 7 days,
// requests waiting), decisions are counted by service, and promtool finds
// nothing wrong with them.
func TestCensusGauges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{appOptions: "census_interval 1s"})
	before := e.scrape(t)

	e.bootstrap() // two management tokens, active
	active, _ := e.issue(billingReader(nil))
	_, revoked := e.issue(billingReader(nil))
	if status, body := e.admin("POST", "/tokengate/tokens/"+revoked+"/revoke", map[string]string{"reason": "census test"}); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	_, rotated := e.issue(billingReader(nil))
	if status, body := e.admin("POST", "/tokengate/tokens/"+rotated+"/rotate", map[string]string{"grace": "10m"}); status != http.StatusCreated {
		t.Fatalf("rotate: %d %s", status, body)
	}
	e.issue(billingReader(map[string]any{"not_before": e.now().Add(30 * time.Minute)}))
	if status, body := e.mgmt(e.requester, "POST", "/v1/requests", map[string]any{
		"owner": "etl", "purpose": "nightly load", "scopes": []string{"billing:write"},
		"services": []string{"billing"}, "ttl": "24h",
	}); status != http.StatusAccepted {
		t.Fatalf("request: %d %s", status, body)
	}

	call(t, "GET", e.gateURL+"/billing/a", bearer(active)...)
	call(t, "GET", e.gateURL+"/billing/b", bearer(active)...)
	call(t, "POST", e.gateURL+"/billing/a", bearer(active)...) // scope_missing
	call(t, "GET", e.gateURL+"/search/a")                      // token_missing

	// The bootstrap tokens' expiry decides whether they count as expiring
	// soon; the rest live an hour at most.
	mgmtExpiring := 0
	for _, tok := range e.inventory() {
		if len(tok.Services) != 1 || tok.Services[0] != "tokengate-admin" {
			continue
		}
		if time.Until(tok.ExpiresAt) <= 7*24*time.Hour {
			mgmtExpiring++
		}
	}
	want := map[string]float64{
		`tokengate_tokens{state="active"}`:    4, // bootstrap 2, issued, rotation successor
		`tokengate_tokens{state="pending"}`:   1,
		`tokengate_tokens{state="rotating"}`:  1,
		`tokengate_tokens{state="revoked"}`:   1,
		`tokengate_tokens{state="expired"}`:   0,
		`tokengate_tokens{state="exhausted"}`: 0,
		`tokengate_tokens{state="rotated"}`:   0,
		`tokengate_tokens_expiring_soon`:      float64(3 + mgmtExpiring),
		`tokengate_requests_pending`:          1,
	}
	var got map[string]float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = e.scrape(t)
		if matches(got, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for series, v := range want {
		if got[series] != v {
			t.Errorf("%s = %v, want %v", series, got[series], v)
		}
	}
	for series, delta := range map[string]float64{
		`tokengate_service_decisions_total{result="allow",service="billing"}`: 2,
		`tokengate_service_decisions_total{result="deny",service="billing"}`:  1,
		`tokengate_service_decisions_total{result="deny",service="search"}`:   1,
		`tokengate_service_decisions_total{result="error",service="search"}`:  0,
	} {
		if d := got[series] - before[series]; d != delta {
			t.Errorf("%s grew by %v, want %v", series, d, delta)
		}
	}
	if ts := got["tokengate_census_last_success_timestamp_seconds"]; time.Since(time.Unix(int64(ts), 0)) > time.Minute {
		t.Errorf("census last success at %v", ts)
	}
	if got[fmt.Sprintf(`tokengate_build_info{version=%q}`, version.Module())] != 1 {
		t.Errorf("no tokengate_build_info for version %s", version.Module())
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed (Debian package prometheus); lint skipped")
		return
	}
	_, ours := parseMetrics(t, e.scrapeText(t))
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(ours)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func matches(got, want map[string]float64) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func (e *env) scrapeText(t *testing.T) []byte {
	t.Helper()
	resp, err := http.Get(e.adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	samples, _ := parseMetrics(t, e.scrapeText(t))
	return samples
}

// inventory lists every token through the admin endpoint.
func (e *env) inventory() []tokenView {
	e.t.Helper()
	status, body := e.admin("GET", "/tokengate/tokens", nil)
	if status != 200 {
		e.t.Fatalf("list: %d %s", status, body)
	}
	var list []tokenView
	if err := json.Unmarshal(body, &list); err != nil {
		// A paginated answer.
		var page struct{ Items []tokenView }
		if err := json.Unmarshal(body, &page); err != nil {
			e.t.Fatalf("list: %s", body)
		}
		list = page.Items
	}
	return list
}

type tokenView struct {
	Owner     string
	Services  []string
	ExpiresAt time.Time `json:"expires_at"`
}

// census_interval sets how often the store is counted: with the default
// made an hour, a token issued after start still shows in the gauges
// within seconds when the config asks for 1s.
func TestCensusIntervalOption(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{appOptions: "census_interval 1s"})
	e.bootstrap()
	e.issue(billingReader(nil))
	// The two bootstrap tokens and the issued one, all issued after the
	// count at start.
	const active, want = `tokengate_tokens{state="active"}`, 3
	if n := len(e.inventory()); n != want {
		t.Fatalf("inventory holds %d tokens, want %d", n, want)
	}
	deadline := time.Now().Add(15 * time.Second)
	for e.scrape(t)[active] != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s still %v 15s after a token was issued, with census_interval 1s", active, e.scrape(t)[active])
		}
		time.Sleep(100 * time.Millisecond)
	}
}
