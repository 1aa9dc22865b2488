package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pepperConfig is a gateway on gatePort whose tokengate app has the given
// pepper line (none when empty), with Caddy's own log in dir.
func pepperConfig(p envPorts, dir, pepperLine string) string {
	return fmt.Sprintf(`{
	skip_install_trust
	persist_config off
	default_bind 127.0.0.1
	admin localhost:%d
	http_port %d
	https_port %d
	tokengate {
		store bolt %s/tokens.db
		%s
	}
	log default {
		output file %s/caddy.log
		format json
		level DEBUG
	}
}
:%d {
	route /billing/* {
		tokengate billing
		respond "ok" 200
	}
}
`, p.admin, p.gate, p.https, dir, pepperLine, dir, p.gate)
}

// loadConfig posts a Caddyfile to the env's Caddy's admin endpoint, as
// `caddy reload --force` does (the text may be unchanged while the
// environment it refers to changed), and returns the status and body of
// the answer.
func (e *env) loadConfig(t *testing.T, cfg string) (int, string) {
	t.Helper()
	var status int
	var body string
	if e.proc != nil {
		status, body = e.proc.Load(t, cfg, true, 0)
	} else {
		req, _ := http.NewRequest(http.MethodPost, e.adminURL+"/load", strings.NewReader(cfg))
		req.Header.Set("Content-Type", "text/caddyfile")
		req.Header.Set("Cache-Control", "must-revalidate")
		// A fresh connection per load: Caddy may restart its admin
		// server while it rolls back a refused config, and a POST on a
		// kept-alive connection it closed fails with EOF (Go does not
		// retry a POST).
		req.Close = true
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		status, body = resp.StatusCode, string(b)
	}
	// The load replaced the servers: connections kept alive to the old
	// ones are closing, and a call sent on one would read EOF; the new
	// ones answer once settleServers returns. (The configs loaded here
	// serve the gateway's site only.)
	settleServers(e.gateURL)
	return status, body
}

// TestPepperThatResolvesToNothingRefusesToStart: `pepper
// {env.TOKENGATE_TEST_PEPPER}` hashes with that key while the variable is
// set, and is a start-up error naming the option while it is unset or
// blank, instead of falling back to plain SHA-256.
func TestPepperThatResolvesToNothingRefusesToStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const variable = "TOKENGATE_TEST_PEPPER"
	const pepper = "pepper-9f2c-the-operator-keeps-secret"
	pepperLine := "pepper {env." + variable + "}"
	e := newConfigEnv(t, dir, func(p envPorts) string { return pepperConfig(p, dir, pepperLine) }, variable+"="+pepper)
	secret, _ := e.issue(billingReader(nil))
	if r := call(t, "GET", e.gateURL+"/billing/peppered", bearer(secret)...); r.status != 200 {
		t.Fatalf("token issued under the pepper: %d %s", r.status, r.body)
	}

	// The same secret under another pepper, or none, hashes differently:
	// the pepper was in use.
	e.setenv(variable, pepper+"-other")
	if status, body := e.loadConfig(t, pepperConfig(e.ports, dir, pepperLine)); status != 200 {
		t.Fatalf("loading with another pepper: %d %s", status, body)
	}
	if r := call(t, "GET", e.gateURL+"/billing/other-pepper", bearer(secret)...); r.status != 401 || r.reason != "token_unknown" {
		t.Fatalf("token under another pepper: %d %s", r.status, r.body)
	}

	for name, value := range map[string]*string{"unset": nil, "empty": new(string), "blank": ptr(" \t\n")} {
		if value == nil {
			e.unsetenv(variable)
		} else {
			e.setenv(variable, *value)
		}
		status, body := e.loadConfig(t, pepperConfig(e.ports, dir, pepperLine))
		if status < 400 || !strings.Contains(body, "tokengate: pepper is configured but resolves to an empty value") {
			t.Errorf("%s %s: config loaded (%d %s), want a start-up error naming the pepper", name, variable, status, body)
		}
		if value == nil && !strings.Contains(body, "{env."+variable+"}") {
			t.Errorf("the error does not name the empty placeholder: %s", body)
		}
	}
	status, body := e.loadConfig(t, pepperConfig(e.ports, dir, "pepper {evn."+variable+"}"))
	if status < 400 || !strings.Contains(body, "tokengate: pepper has a placeholder Caddy does not know") {
		t.Errorf("misspelt placeholder: %d %s, want a start-up error", status, body)
	}
	// The refused configs left the running one in place.
	if r := call(t, "GET", e.gateURL+"/billing/still-other", bearer(secret)...); r.status != 401 || r.reason != "token_unknown" {
		t.Fatalf("after refused reloads: %d %s", r.status, r.body)
	}

	// No pepper at all is plain SHA-256, as before.
	if status, body := e.loadConfig(t, pepperConfig(e.ports, dir, "")); status != 200 {
		t.Fatalf("loading without a pepper: %d %s", status, body)
	}
	plain, _ := e.issue(billingReader(nil))
	if r := call(t, "GET", e.gateURL+"/billing/plain", bearer(plain)...); r.status != 200 {
		t.Fatalf("token without a pepper: %d %s", r.status, r.body)
	}

	log, err := os.ReadFile(filepath.Join(dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), pepper) {
		t.Fatal("the pepper appears in Caddy's log")
	}
}

func ptr[T any](v T) *T { return &v }

// TestPreviousPepperIsCheckedLikePepper: previous_pepper equal to pepper,
// or resolving to nothing, refuses the config with an error naming the
// option and never the value; the running config stays.
func TestPreviousPepperIsCheckedLikePepper(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const variable = "TOKENGATE_TEST_PREVIOUS_PEPPER"
	const pepper = "pepper-41aa-the-operator-keeps-secret"
	e := newConfigEnv(t, dir, func(p envPorts) string { return pepperConfig(p, dir, "pepper "+pepper) })
	secret, _ := e.issue(billingReader(nil))

	e.setenv(variable, pepper)
	status, body := e.loadConfig(t, pepperConfig(e.ports, dir, "pepper "+pepper+"\nprevious_pepper {env."+variable+"}"))
	if status < 400 || !strings.Contains(body, "tokengate: previous_pepper is the same as pepper") || strings.Contains(body, pepper) {
		t.Errorf("previous_pepper equal to pepper: %d %s, want a start-up error without the pepper", status, body)
	}
	e.unsetenv(variable)
	status, body = e.loadConfig(t, pepperConfig(e.ports, dir, "pepper "+pepper+"\nprevious_pepper {env."+variable+"}"))
	if status < 400 || !strings.Contains(body, "tokengate: previous_pepper is configured but resolves to an empty value") {
		t.Errorf("previous_pepper resolving to nothing: %d %s, want a start-up error naming previous_pepper", status, body)
	}
	if r := call(t, "GET", e.gateURL+"/billing/still", bearer(secret)...); r.status != 200 {
		t.Fatalf("after refused reloads the running config no longer serves: %d %s", r.status, r.body)
	}
}
