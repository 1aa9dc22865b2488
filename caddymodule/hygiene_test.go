package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/token"
)

// TestInputHygiene: free text that could rewrite an approver's terminal
// or carry a live secret into audit lines and upstream headers is refused
// at every entry point, with a 400 that quotes none of it.
func TestInputHygiene(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	live, _ := e.issue(billingReader(nil)) // remembered: the leak scan looks for it everywhere

	noEcho := func(what string, body []byte) {
		t.Helper()
		if bytes.Contains(body, []byte(live[3:33])) || bytes.Contains(body, []byte(`\u001b`)) || bytes.Contains(body, []byte("\u202e")) {
			t.Errorf("%s: the refusal echoes the input: %s", what, body)
		}
	}

	// Bootstrap names, on Caddy's admin endpoint, before there is anyone.
	status, body := e.admin("POST", "/tokengate/bootstrap", map[string]string{"requester": "alice", "approver": live})
	wantRefusal(t, "secret as bootstrap approver", status, body, 400, "secret_in_field")
	noEcho("bootstrap", body)
	status, body = e.admin("POST", "/tokengate/bootstrap", map[string]string{"requester": "alice\x1b[2K", "approver": "bob"})
	wantRefusal(t, "escape in bootstrap requester", status, body, 400, "requester_invalid")

	// The local operator's issue.
	status, body = e.admin("POST", "/tokengate/tokens", billingReader(map[string]any{"owner": live}))
	wantRefusal(t, "secret as owner (issue)", status, body, 400, "secret_in_field")
	noEcho("issue", body)

	e.bootstrap()
	ask := func(extra map[string]any) (int, []byte) {
		return e.mgmt(e.requester, "POST", "/v1/requests", billingReader(extra))
	}
	for _, tc := range []struct {
		name   string
		extra  map[string]any
		reason string
	}{
		{"purpose rewriting the screen", map[string]any{"purpose": "nightly\r\x1b[2Kreq_fake  pending  bob"}, "purpose_invalid"},
		{"purpose with a C1 CSI", map[string]any{"purpose": "nightly \u009b2K"}, "purpose_invalid"},
		{"purpose with a bidi override", map[string]any{"purpose": "invoices \u202egnp.exe"}, "purpose_invalid"},
		{"owner with a newline", map[string]any{"owner": "etl\nroot"}, "owner_invalid"},
		{"live secret as owner", map[string]any{"owner": live}, "secret_in_field"},
		{"live secret inside purpose", map[string]any{"purpose": "same as " + live + " but longer"}, "secret_in_field"},
		{"purpose with a zero-width space", map[string]any{"purpose": "nightly\u200bload"}, "purpose_invalid"},
		{"purpose with a byte order mark", map[string]any{"purpose": "\ufeffnightly load"}, "purpose_invalid"},
		{"live secret split by a zero-width space", map[string]any{"purpose": "see " + live[:20] + "\u200b" + live[20:]}, "secret_in_field"},
		{"live secret split by a soft hyphen", map[string]any{"purpose": "see " + live[:20] + "\u00ad" + live[20:]}, "secret_in_field"},
		{"live secret with an upper-case prefix", map[string]any{"purpose": "see TG_" + live[3:]}, "secret_in_field"},
	} {
		status, body := ask(tc.extra)
		wantRefusal(t, tc.name, status, body, 400, tc.reason)
		noEcho(tc.name, body)
	}
	status, body = ask(map[string]any{"purpose": "nightly\r\x1b[2K"})
	if msg := decode[APIError](t, body).Detail; !strings.Contains(msg, "control character") {
		t.Errorf("the message should name the character class: %d %s", status, body)
	}

	// Invalid UTF-8 never reaches the JSON decoder, which would quietly
	// store U+FFFD instead.
	raw := []byte(`{"owner":"alice","purpose":"caf` + "\xe9" + `","scopes":["billing:read"],"services":["billing"],"ttl":"1h"}`)
	status, body = e.sendRaw(t, e.requester, "/v1/requests", raw)
	wantRefusal(t, "invalid UTF-8", status, body, 400, "body_invalid")

	// Reasons of approvals, denials and revocations.
	status, body = e.mgmt(e.requester, "POST", "/v1/requests", writeRequest(nil))
	if status != http.StatusAccepted {
		t.Fatalf("write request: %d %s", status, body)
	}
	id := decode[RequestOutcome](t, body).Request.ID
	status, body = e.mgmt(e.approver, "POST", "/v1/requests/"+id+"/approve", map[string]string{"reason": "ok\r\x1b[1Adenied"})
	wantRefusal(t, "escape in approval reason", status, body, 400, "reason_invalid")
	status, body = e.mgmt(e.approver, "POST", "/v1/requests/"+id+"/deny", map[string]string{"reason": "leaked " + live})
	wantRefusal(t, "secret in denial reason", status, body, 400, "secret_in_field")
	noEcho("deny", body)
	_, tokID := e.issue(billingReader(nil))
	status, body = e.admin("POST", "/tokengate/tokens/"+tokID+"/revoke", map[string]string{"reason": "done\u2067"})
	wantRefusal(t, "bidi isolate in revoke reason", status, body, 400, "reason_invalid")
	status, body = e.admin("POST", "/tokengate/tokens/"+tokID+"/revoke", map[string]string{"reason": live})
	wantRefusal(t, "secret as revoke reason", status, body, 400, "secret_in_field")
	noEcho("revoke", body)

	// A secret in place of an id in the URL is echoed neither in the
	// answer nor in the management audit line. (The URI itself is in
	// Caddy's access log and the gateway's decision line, as sent.)
	pasted := token.NewSecret()
	for _, call := range []func() (int, []byte){
		func() (int, []byte) {
			return e.mgmt(e.approver, "POST", "/v1/requests/"+pasted+"/approve", map[string]string{"reason": "ok"})
		},
		func() (int, []byte) {
			return e.mgmt(e.requester, "POST", "/v1/tokens/"+pasted+"/revoke", map[string]string{"reason": "x"})
		},
		func() (int, []byte) {
			return e.admin("POST", "/tokengate/tokens/"+pasted+"/revoke", map[string]string{"reason": "x"})
		},
	} {
		status, body := call()
		if status != 404 || bytes.Contains(body, []byte(pasted[3:33])) {
			t.Errorf("secret as an id: %d %s", status, body)
		}
	}
	for _, l := range e.auditLines() {
		if l["msg"] != "decision" && strings.Contains(fmt.Sprint(l["request_id"], l["token_id"], l["reason"]), pasted[3:33]) {
			t.Errorf("a secret pasted as an id is in the %s audit line", l["msg"])
		}
	}

	// Each refusal left a refused audit line with its reason, and nothing
	// of what was refused.
	var refused []string
	for _, l := range e.auditLines() {
		if l["outcome"] == "refused" {
			for _, r := range l["reasons"].([]any) {
				refused = append(refused, r.(string))
			}
		}
	}
	for _, want := range []string{"secret_in_field", "purpose_invalid", "owner_invalid", "reason_invalid", "requester_invalid"} {
		if !slices.Contains(refused, want) {
			t.Errorf("no refused audit line with reason %s (got %v)", want, refused)
		}
	}
	for _, name := range []string{"audit.log", "caddy.log", "access.log"} {
		b, _ := os.ReadFile(filepath.Join(e.dir, name))
		if bytes.Contains(b, []byte(`\u001b`)) || bytes.Contains(b, []byte(`\u202e`)) || bytes.Contains(b, []byte("\u202e")) {
			t.Errorf("%s holds a control or bidi character from refused input", name)
		}
	}
	// checkNothingLeaked (after the test) scans every log and the upstream
	// for the live secret.
}

// TestAutoApprovalNeedsRealBinding: just-in-time approval is for tokens
// bound for real; the whole internet or 2^63 uses is no binding.
func TestAutoApprovalNeedsRealBinding(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{policyDir: directoryKnowsAlice(t)})
	e.bootstrap()
	for _, tc := range []struct {
		name  string
		extra map[string]any
		want  int
	}{
		{"0.0.0.0/0", map[string]any{"cidrs": []string{"0.0.0.0/0"}}, http.StatusAccepted},
		{"::/0", map[string]any{"cidrs": []string{"::/0"}}, http.StatusAccepted},
		{"IPv4-mapped whole IPv4", map[string]any{"cidrs": []string{"::ffff:0.0.0.0/96"}}, http.StatusAccepted},
		{"a /8 beside 0.0.0.0/0", map[string]any{"cidrs": []string{"10.0.0.0/8", "0.0.0.0/0"}}, http.StatusAccepted},
		{"max_uses 2^63-1", map[string]any{"max_uses": int64(9223372036854775807)}, http.StatusAccepted},
		{"max_uses 1001", map[string]any{"max_uses": 1001}, http.StatusAccepted},
		{"a /8", map[string]any{"cidrs": []string{"10.0.0.0/8"}}, http.StatusCreated},
		{"a /32 of IPv6", map[string]any{"cidrs": []string{"2001:db8::/32"}}, http.StatusCreated},
		{"max_uses 1000", map[string]any{"max_uses": 1000}, http.StatusCreated},
	} {
		status, body := e.mgmt(e.requester, "POST", "/v1/requests", billingReader(tc.extra))
		if status == http.StatusCreated {
			remember(decode[RequestOutcome](t, body).Secret)
		}
		if status != tc.want {
			t.Errorf("%s: got %d (%s), want %d", tc.name, status, decode[RequestOutcome](t, body).Request.Status, tc.want)
		}
	}

	// The report counts a writer bound only to 0.0.0.0/0 as unbound.
	_, open := e.approvedToken(writeRequest(map[string]any{"cidrs": []string{"0.0.0.0/0"}}))
	_, bound := e.approvedToken(writeRequest(map[string]any{"cidrs": []string{"10.0.0.0/8"}}))
	status, body := e.mgmt(e.approver, "GET", "/v1/report", nil)
	if status != 200 {
		t.Fatalf("report: %d %s", status, body)
	}
	var rep struct {
		WriteWithoutCIDR []struct {
			TokenID string `json:"token_id"`
		} `json:"write_without_cidr"`
	}
	_ = json.Unmarshal(body, &rep)
	var ids []string
	for _, it := range rep.WriteWithoutCIDR {
		ids = append(ids, it.TokenID)
	}
	if !slices.Contains(ids, open) || slices.Contains(ids, bound) {
		t.Errorf("write_without_cidr %v: want %s (0.0.0.0/0) and not %s (10.0.0.0/8)", ids, open, bound)
	}
}

// sendRaw posts bytes as they are, for bodies json.Marshal would repair.
func (e *env) sendRaw(t *testing.T, secret, path string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.mgmtURL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}
