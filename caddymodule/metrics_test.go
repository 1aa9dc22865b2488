package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestMetricsOnAdminEndpoint runs Caddy as a process of its own, makes
// calls of every kind, revokes a token, and reads Caddy's admin /metrics
// as Prometheus would: the tokengate counters moved by exactly the calls
// made, no label carries a token id or a path, and promtool (when
// installed) finds nothing wrong with the tokengate metrics.
func TestMetricsOnAdminEndpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newConfigEnv(t, dir, func(p envPorts) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	tokengate {
		store bolt %s
	}
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	route /billing/* {
		tokengate billing
		respond "ok" 200
	}
}
`, p.admin, filepath.Join(dir, "tokens.db"), p.gate)
	})
	admin := fmt.Sprintf("127.0.0.1:%d", e.ports.admin)
	gw := e.gateURL

	var issued IssuedToken
	status := postJSON(t, "http://"+admin+"/tokengate/tokens", map[string]any{
		"owner": "alice", "purpose": "metrics test", "ttl": "1h",
		"scopes": []string{"billing:read"}, "services": []string{"billing"},
	}, &issued)
	if status != http.StatusCreated {
		t.Fatalf("issue: %d", status)
	}
	get := func(method, path string, secret string) int {
		req, _ := http.NewRequest(method, gw+path, nil)
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	want := func(got, want int) {
		t.Helper()
		if got != want {
			t.Fatalf("got %d, want %d", got, want)
		}
	}
	want(get("GET", "/billing/a", issued.Secret), 200)  // decision cache miss
	settleDecisionCaches()                              // ristretto admits asynchronously
	want(get("GET", "/billing/a", issued.Secret), 200)  // hit
	want(get("GET", "/billing/a", issued.Secret), 200)  // hit
	want(get("GET", "/billing/a", ""), 401)             // token_missing
	want(get("POST", "/billing/a", issued.Secret), 403) // scope_missing
	if status := postJSON(t, "http://"+admin+"/tokengate/tokens/"+issued.Token.ID+"/revoke", map[string]string{"reason": "metrics test"}, nil); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	want(get("GET", "/billing/a", issued.Secret), 401) // token_revoked

	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	samples, ours := parseMetrics(t, scrape)

	for series, wantValue := range map[string]float64{
		`tokengate_decisions_total{reason="none",result="allow"}`:         3,
		`tokengate_decisions_total{reason="token_missing",result="deny"}`: 1,
		`tokengate_decisions_total{reason="scope_missing",result="deny"}`: 1,
		`tokengate_decisions_total{reason="token_revoked",result="deny"}`: 1,
		`tokengate_decisions_total{reason="token_expired",result="deny"}`: 0,
		`tokengate_invalidations_total{source="local"}`:                   1,
		`tokengate_invalidations_total{source="notify"}`:                  0,
		`tokengate_invalidation_lag_seconds_count{source="local"}`:        1,
		`tokengate_store_seconds_count{op="get_by_hash"}`:                 2, // before and after the revoke
		`tokengate_store_seconds_bucket{op="get_by_hash",le="+Inf"}`:      2,
	} {
		got, ok := samples[series]
		if !ok {
			t.Errorf("%s missing from the scrape", series)
		} else if got != wantValue {
			t.Errorf("%s = %v, want %v", series, got, wantValue)
		}
	}
	// Four calls reached the decision cache: three GETs and the POST (the
	// revoked token is refused by the liveness check, before the cache and
	// the policy). The first GET and the POST miss; the two GETs after
	// them hit once ristretto has admitted the first decision, which it
	// does on its own goroutine in the other process, so a busy machine
	// may turn the first of them into a miss too. Every miss, and only a
	// miss, asks the policy.
	hits, misses := samples[`tokengate_decision_cache_total{result="hit"}`], samples[`tokengate_decision_cache_total{result="miss"}`]
	if hits+misses != 4 || hits < 1 || misses < 2 {
		t.Errorf("decision cache: %v hits and %v misses, want 4 lookups, at least 2 misses and 1 hit", hits, misses)
	}
	if evals := samples[`tokengate_policy_eval_seconds_count`]; evals != misses {
		t.Errorf("tokengate_policy_eval_seconds_count = %v, want one per miss (%v)", evals, misses)
	}
	if lag := samples[`tokengate_invalidation_lag_seconds_sum{source="local"}`]; lag <= 0 || lag > 5 {
		t.Errorf("revocation to cache drop took %vs", lag)
	}
	for _, secretish := range []string{issued.Token.ID, issued.Secret, "/billing", "alice"} {
		if bytes.Contains(scrape, []byte(secretish)) {
			t.Errorf("the scrape contains %q", secretish)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed (Debian package prometheus); lint skipped")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(ours)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// parseMetrics reads a Prometheus text scrape into series -> value, and
// returns the tokengate part of it (with its HELP and TYPE lines) for
// promtool: Caddy's own metrics are not ours to lint.
func parseMetrics(t *testing.T, scrape []byte) (map[string]float64, []byte) {
	t.Helper()
	samples := map[string]float64{}
	var ours bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(scrape))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "tokengate_") || strings.HasPrefix(line, "# HELP tokengate_") || strings.HasPrefix(line, "# TYPE tokengate_") {
			ours.WriteString(line + "\n")
		}
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		samples[line[:i]] = v
	}
	return samples, ours.Bytes()
}

func postJSON(t *testing.T, url string, body, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// A management call the gateway lets through but the admin policy refuses
// is counted as the deny its call line records, not as an allow.
func TestManagementRefusalIsCountedAsDeny(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.bootstrap()
	_, body := e.mgmt(e.requester, "POST", "/v1/requests", writeRequest(nil))
	req := decode[RequestOutcome](t, body).Request
	aliceApprover, _ := e.approvedToken(map[string]any{
		"owner": "alice", "purpose": "approve for the finance team", "scopes": []string{"tokens:approve"},
		"services": []string{"tokengate-admin"}, "ttl": "1h"})
	const (
		allowed   = `tokengate_decisions_total{reason="none",result="allow"}`
		refused   = `tokengate_decisions_total{reason="self_approval",result="deny"}`
		svcAllow  = `tokengate_service_decisions_total{result="allow",service="tokengate-admin"}`
		svcDenied = `tokengate_service_decisions_total{result="deny",service="tokengate-admin"}`
	)
	before := e.scrape(t)
	status, body := e.mgmt(aliceApprover, "POST", "/v1/requests/"+req.ID+"/approve", map[string]string{})
	wantRefusal(t, "self-approval", status, body, http.StatusForbidden, "self_approval")
	e.auditFor("/v1/requests/" + req.ID + "/approve") // counted when its line is written
	after := e.scrape(t)
	for series, delta := range map[string]float64{allowed: 0, refused: 1, svcAllow: 0, svcDenied: 1} {
		if d := after[series] - before[series]; d != delta {
			t.Errorf("%s grew by %v, want %v", series, d, delta)
		}
	}
}
