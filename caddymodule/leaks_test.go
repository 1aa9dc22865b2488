package caddymodule

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/caddy-tokengate/internal/notify"
)

const leakHookSecretVar = "TOKENGATE_LEAK_HOOK_SECRET"

// postAlertWebhook sends GitHub's secret_scanning_alert webhook, signed
// with secret, to POST /v1/leaks.
func (e *env) postAlertWebhook(t *testing.T, secret string, body []byte) (int, []byte) {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, e.mgmtURL+"/v1/leaks", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "secret_scanning_alert")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func alertBody(secret string) []byte {
	b, _ := json.Marshal(map[string]any{"action": "created", "alert": map[string]any{
		"number": 7, "secret_type": "tokengate_secret", "secret": secret,
		"html_url": "https://github.com/octo/private/security/secret-scanning/7"}})
	return b
}

// An organisation's secret_scanning_alert webhook, HMAC-signed, revokes
// the secret it carries: the token reads exposed, token.exposed reaches
// the webhooks naming the token, its owner and holder (never the secret),
// and a redelivery changes nothing and announces nothing. A wrong HMAC is
// 401; a caller whose policy lets them read but not revoke is refused
// POST /v1/leaks; an oversized body is 413. Every line matches the audit
// schema and no secret reaches any log (checked after the test).
func TestLeakWebhookRevokesAndAnnouncesOnce(t *testing.T) {
	t.Parallel()
	const hookSecret = "whsec-leaks-0123456789abcdef0123456789abcdef"
	const leakSecret = "org-webhook-secret-0123456789"
	h := startHookReceiver(t, hookSecret)
	e := newEnv(t, envOptions{appOptions: "webhook " + h.URL + " {\n\t\t\tsecret {env." + webhookSecretVar + "}\n\t\t}\n" +
		"\t\tleaks {\n\t\t\twebhook_secret {env." + leakHookSecretVar + "}\n\t\t}",
		environ: []string{webhookSecretVar + "=" + hookSecret, leakHookSecretVar + "=" + leakSecret}})
	e.bootstrap()
	leaked, leakedID := e.issue(billingReader(nil))
	other, otherID := e.issue(billingReader(nil))

	if status, body := e.postAlertWebhook(t, "not-the-secret", alertBody(leaked)); status != http.StatusUnauthorized {
		t.Fatalf("wrong HMAC: %d %s", status, body)
	}
	if status, body := e.mgmt(e.requester, "POST", "/v1/leaks", map[string]any{"source": "paste", "secrets": []string{leaked}}); status != http.StatusForbidden || !strings.Contains(string(body), "scope_missing") {
		t.Fatalf("a report from a caller without tokens:revoke: %d %s", status, body)
	}
	if r := call(t, "GET", e.gateURL+"/billing/x", "Authorization", "Bearer "+leaked); r.status != http.StatusOK {
		t.Fatalf("refused reports changed the token: %d %s", r.status, r.body)
	}

	status, body := e.postAlertWebhook(t, leakSecret, alertBody(leaked))
	if status != http.StatusOK || !strings.Contains(string(body), `"exposed":1`) {
		t.Fatalf("signed webhook: %d %s", status, body)
	}
	if r := call(t, "GET", e.gateURL+"/billing/x", "Authorization", "Bearer "+leaked); r.status != http.StatusUnauthorized || r.reason != "token_revoked" {
		t.Fatalf("after the webhook: %d %s", r.status, r.reason)
	}
	status, body = e.admin("GET", "/tokengate/tokens/"+leakedID, nil)
	var view TokenView
	if json.Unmarshal(body, &view); status != 200 || view.State != "exposed" || view.ExposureSource != "github-webhook" ||
		view.ExposureURL != "https://github.com/octo/private/security/secret-scanning/7" || view.ExposedAt == nil || view.RevokeReason != "leaked" {
		t.Fatalf("token after the webhook: %d %s", status, body)
	}
	status, body = e.admin("GET", "/tokengate/tokens?state=exposed", nil)
	if status != 200 || !strings.Contains(string(body), leakedID) || strings.Contains(string(body), otherID) {
		t.Fatalf("inventory of exposed tokens: %d %s", status, body)
	}

	// A redelivery, then an ordinary revoke: the receiver gets exactly
	// token.exposed then token.revoked, so the redelivery announced
	// nothing.
	if status, body = e.postAlertWebhook(t, leakSecret, alertBody(leaked)); status != http.StatusOK || !strings.Contains(string(body), `"already_exposed":1`) {
		t.Fatalf("redelivery: %d %s", status, body)
	}
	if status, body = e.admin("POST", "/tokengate/tokens/"+otherID+"/revoke", map[string]string{"reason": "done"}); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	events := h.await(t, 2)
	if len(events) != 2 || events[0].Type != notify.TokenExposed || events[1].Type != notify.TokenRevoked {
		t.Fatalf("events %+v, want token.exposed then token.revoked", events)
	}
	ev := events[0]
	if ev.TokenID != leakedID || ev.Owner != "alice" || ev.HeldBy != "local-operator" || ev.Source != "github-webhook" || !strings.Contains(ev.Text, leakedID) {
		t.Fatalf("token.exposed event %+v", ev)
	}
	for _, b := range h.bodies {
		if strings.Contains(b, leaked) || strings.Contains(b, other) {
			t.Fatal("a webhook event carries a secret")
		}
	}

	big := bytes.Repeat([]byte("x"), 2<<20)
	if status, _ := e.postAlertWebhook(t, leakSecret, big); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 2 MB body: %d", status)
	}
	var reported []string
	for _, l := range e.auditLines() {
		if l["msg"] == "leak.reported" {
			reported = append(reported, l["outcome"].(string))
		}
	}
	if want := "refused refused success success refused"; strings.Join(reported, " ") != want {
		t.Fatalf("leak.reported outcomes %v, want %s", reported, want)
	}
}

func TestLeaksCaddyfile(t *testing.T) {
	t.Parallel()
	cases := []struct{ input, want, wantErr string }{
		{input: "tokengate {\n leaks {\n  github_keys https://api.github.com/meta/public_keys/secret_scanning\n  webhook_secret {env.S}\n  limit 10 30s\n }\n}",
			want: `{"leaks":{"github_keys":"https://api.github.com/meta/public_keys/secret_scanning","webhook_secret":"{env.S}","limit":{"attempts":10,"window":30000000000}}}`},
		{input: "tokengate {\n leaks\n}", want: `{"leaks":{}}`},
		{input: "tokengate {\n leaks x\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n leaks {\n  github_keys\n }\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n leaks {\n  limit 0 1m\n }\n}", wantErr: "limit takes a number of attempts and a window"},
		{input: "tokengate {\n leaks {\n  keys x\n }\n}", wantErr: `unrecognized leaks subdirective "keys"`},
	}
	for _, c := range cases {
		var a App
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input))
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: err = %v, want %q", c.input, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.input, err)
			continue
		}
		if got, _ := json.Marshal(&a); string(got) != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.input, got, c.want)
		}
	}
}
