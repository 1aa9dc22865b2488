package caddymodule

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/notify"
	"github.com/tokengate/caddy-tokengate/webhook"
)

const webhookSecretVar = "TOKENGATE_WEBHOOK_SECRET"

// hookReceiver is a real HTTP receiver doing what a receiver should:
// verify the signature over the raw body, then keep the event. It checks
// the Standard Webhooks headers with the public package webhook, and the
// Tokengate-Signature kept for receivers written before them.
type hookReceiver struct {
	*httptest.Server
	key      []byte
	mu       sync.Mutex
	events   []notify.Event
	bodies   []string
	headers  []http.Header
	unsigned int
}

func startHookReceiver(t *testing.T, secret string) *hookReceiver {
	key, err := webhook.Key(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := &hookReceiver{key: key}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if webhook.Verify(h.key, r.Header, body, time.Now(), webhook.DefaultTolerance) != nil ||
			webhook.VerifyLegacy(h.key, r.Header.Get(notify.SignatureHeader), body, time.Now(), webhook.DefaultTolerance) != nil {
			h.unsigned++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var e notify.Event
		if json.Unmarshal(body, &e) != nil || e.Type != r.Header.Get(notify.EventHeader) ||
			e.ID != r.Header.Get(notify.DeliveryHeader) || e.ID != r.Header.Get(webhook.IDHeader) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.events = append(h.events, e)
		h.bodies = append(h.bodies, string(body))
		h.headers = append(h.headers, r.Header.Clone())
	}))
	t.Cleanup(h.Close)
	return h
}

// await returns the events once n have arrived.
func (h *hookReceiver) await(t *testing.T, n int) []notify.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h.mu.Lock()
		got := slices.Clone(h.events)
		h.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got %d events, want %d: %v", len(got), n, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWebhooksHearTheFlow: through real Caddy, request -> approve ->
// claim, request -> deny, and revoke each reach a real receiver as a
// signed event, in order, without any secret; the deliveries are logged
// (logger tokengate.webhook) without the hook's secret or URL path; a
// webhook whose secret is unset or short refuses the config.
func TestWebhooksHearTheFlow(t *testing.T) {
	t.Parallel()
	const hookSecret = "whsec-e2e-0123456789abcdef0123456789abcdef"
	h := startHookReceiver(t, hookSecret)
	hookURL := h.URL + "/services/T0/B0/XXXXsecretpath"
	hookLines := "webhook " + hookURL + " {\n\t\t\tsecret {env." + webhookSecretVar + "}\n\t\t}"
	e := newEnv(t, envOptions{appOptions: hookLines, environ: []string{webhookSecretVar + "=" + hookSecret}})
	e.bootstrap()

	status, body := e.mgmt(e.requester, "POST", "/v1/requests", writeRequest(map[string]any{"ticket": "FIN-12"}))
	if status != http.StatusAccepted {
		t.Fatalf("request: %d %s", status, body)
	}
	approvedID := decode[RequestOutcome](t, body).Request.ID
	if status, body = e.mgmt(e.approver, "POST", "/v1/requests/"+approvedID+"/approve", map[string]string{"reason": "ledger migration"}); status != 200 {
		t.Fatalf("approve: %d %s", status, body)
	}
	status, body = e.mgmt(e.requester, "POST", "/v1/requests/"+approvedID+"/claim", nil)
	if status != http.StatusCreated {
		t.Fatalf("claim: %d %s", status, body)
	}
	claimed := decode[RequestOutcome](t, body)
	remember(claimed.Secret)
	status, body = e.mgmt(e.requester, "POST", "/v1/requests", writeRequest(map[string]any{"purpose": "a second try"}))
	if status != http.StatusAccepted {
		t.Fatalf("second request: %d %s", status, body)
	}
	deniedID := decode[RequestOutcome](t, body).Request.ID
	if status, body = e.mgmt(e.approver, "POST", "/v1/requests/"+deniedID+"/deny", map[string]string{"reason": "one is enough"}); status != 200 {
		t.Fatalf("deny: %d %s", status, body)
	}
	if status, body = e.mgmt(e.requester, "POST", "/v1/tokens/"+claimed.Token.ID+"/revoke", map[string]string{"reason": "migration done"}); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}

	events := h.await(t, 5)
	want := []string{notify.RequestPending, notify.RequestApproved, notify.RequestPending, notify.RequestDenied, notify.TokenRevoked}
	var got []string
	for _, ev := range events {
		got = append(got, ev.Type)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if ev := events[0]; ev.RequestID != approvedID || ev.Ticket != "FIN-12" || ev.Owner != "billing-exporter" || !strings.Contains(ev.Text, "waits for an approver") {
		t.Errorf("pending %+v", ev)
	}
	if ev := events[1]; ev.RequestID != approvedID || ev.DecidedBy != "bob" || ev.RequestedBy != "alice" || ev.Reason != "ledger migration" {
		t.Errorf("approved %+v", ev)
	}
	if ev := events[3]; ev.RequestID != deniedID || ev.DecidedBy != "bob" || ev.Reason != "one is enough" {
		t.Errorf("denied %+v", ev)
	}
	if ev := events[4]; ev.TokenID != claimed.Token.ID || ev.DecidedBy != "alice" || ev.Owner != "billing-exporter" {
		t.Errorf("revoked %+v", ev)
	}
	h.mu.Lock()
	bodies, unsigned := strings.Join(h.bodies, "\n"), h.unsigned
	h.mu.Unlock()
	if unsigned != 0 {
		t.Errorf("%d deliveries did not verify", unsigned)
	}
	h.checkAgainstOpenAPI(t)
	secretsSeen.Lock()
	for _, s := range secretsSeen.list {
		if strings.Contains(bodies, s[3:33]) {
			t.Errorf("a webhook event carries a token secret")
		}
	}
	secretsSeen.Unlock()

	delivered := e.caddyLogged("webhook delivered", func(l map[string]any) bool {
		return l["logger"] == "tokengate.webhook" && l["msg"] == "webhook delivered" && l["event"] == notify.TokenRevoked
	})
	if delivered["webhook"] != h.URL || delivered["token_id"] != claimed.Token.ID || delivered["status"] != float64(200) {
		t.Errorf("delivery line %v", delivered)
	}
	caddyLog, err := os.ReadFile(filepath.Join(e.dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{hookSecret, "XXXXsecretpath"} {
		if strings.Contains(string(caddyLog), s) {
			t.Errorf("caddy.log holds %q", s)
		}
	}

	// Configs that must not start: the secret unset, too short, or a
	// Standard Webhooks secret that is not base64 of 24 bytes or more.
	refused := map[string]struct{ secret, wantErr string }{
		"unset":       {"", "secret is missing or has a placeholder that is unknown or empty"},
		"short":       {"short-secret", "secret must be at least 32 characters"},
		"bad whsec":   {"whsec_short-secret-not-base64!", "whsec_ must be followed by the standard base64 of at least 24 random bytes"},
		"short whsec": {"whsec_c2hvcnQtc2VjcmV0", "whsec_ must be followed by the standard base64 of at least 24 random bytes"},
	}
	for name, c := range refused {
		wantErr := c.wantErr
		if c.secret == "" {
			e.unsetenv(webhookSecretVar)
		} else {
			e.setenv(webhookSecretVar, c.secret)
		}
		status, body := e.loadConfig(t, pepperConfig(e.ports, t.TempDir(), hookLines))
		if status < 400 || !strings.Contains(body, wantErr) {
			t.Errorf("%s secret: %d %s, want a start-up error %q", name, status, body, wantErr)
		}
		if strings.Contains(body, "short-secret") || strings.Contains(body, "c2hvcnQtc2VjcmV0") || strings.Contains(body, "XXXXsecretpath") {
			t.Errorf("the error shows the secret or the URL path: %s", body)
		}
	}
}

// A Standard Webhooks secret (whsec_ and base64) keys the signatures with
// the bytes it encodes, as the specification's libraries read it: a
// receiver holding the same string verifies the delivery through real
// Caddy, and the string itself never reaches the logs.
func TestWebhooksTakeAStandardWebhooksSecret(t *testing.T) {
	t.Parallel()
	hookSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	h := startHookReceiver(t, hookSecret)
	e := newEnv(t, envOptions{appOptions: "webhook " + h.URL + " {\n\t\t\tsecret {env." + webhookSecretVar + "}\n\t\t}", environ: []string{webhookSecretVar + "=" + hookSecret}})
	e.bootstrap()
	if status, body := e.mgmt(e.requester, "POST", "/v1/requests", writeRequest(nil)); status != http.StatusAccepted {
		t.Fatalf("request: %d %s", status, body)
	}
	if got := h.await(t, 1); got[0].Type != notify.RequestPending {
		t.Errorf("event %+v", got[0])
	}
	h.mu.Lock()
	unsigned := h.unsigned
	h.mu.Unlock()
	if unsigned != 0 {
		t.Errorf("%d deliveries did not verify", unsigned)
	}
	caddyLog, err := os.ReadFile(filepath.Join(e.dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(caddyLog), hookSecret[len("whsec_"):]) {
		t.Error("caddy.log holds the webhook secret")
	}
}

// TestWebhookLapseAcrossReloads: an approved request nobody claims is
// announced once by the config that finds it lapsed (the app sweeps as it
// starts), not again by the next; after a reload the old config's
// dispatcher is stopped and the new one delivers.
func TestWebhookLapseAcrossReloads(t *testing.T) {
	t.Parallel()
	const hookSecret = "whsec-reload-0123456789abcdef0123456789abcdef"
	first, second := startHookReceiver(t, hookSecret), startHookReceiver(t, hookSecret)
	// extra makes a config differ from the one running, so that Caddy
	// reloads it.
	hookTo := func(h *hookReceiver, extra string) envOptions {
		return envOptions{appOptions: "webhook " + h.URL + " {\n\t\t\tsecret {env." + webhookSecretVar + "}\n\t\t\t" + extra + "\n\t\t}",
			environ: []string{webhookSecretVar + "=" + hookSecret}}
	}
	e := newEnv(t, hookTo(first, ""))
	e.bootstrap()
	status, body := e.mgmt(e.requester, "POST", "/v1/requests", writeRequest(nil))
	if status != http.StatusAccepted {
		t.Fatalf("request: %d %s", status, body)
	}
	id := decode[RequestOutcome](t, body).Request.ID
	if status, body = e.mgmt(e.approver, "POST", "/v1/requests/"+id+"/approve", map[string]string{"reason": "ok"}); status != 200 {
		t.Fatalf("approve: %d %s", status, body)
	}
	first.await(t, 2)

	e.advance(manage.ClaimWindow + time.Minute)
	newEnvReusing(e, hookTo(first, "events "+strings.Join(notify.Types, " ")))
	events := first.await(t, 3)
	if ev := events[2]; ev.Type != notify.RequestLapsed || ev.RequestID != id || ev.DecidedBy != "bob" {
		t.Fatalf("third event %+v, want the lapse of %s", ev, id)
	}
	status, body = e.mgmt(e.requester, "POST", "/v1/requests/"+id+"/claim", nil)
	wantRefusal(t, "claim after the lapse", status, body, http.StatusGone, "request_lapsed")

	newEnvReusing(e, hookTo(second, ""))
	if status, body = e.mgmt(e.requester, "POST", "/v1/requests", writeRequest(map[string]any{"purpose": "after the reload"})); status != http.StatusAccepted {
		t.Fatalf("request after the reload: %d %s", status, body)
	}
	got := second.await(t, 1)
	e.caddyLogged("the delivery to the second receiver", func(l map[string]any) bool {
		return l["logger"] == "tokengate.webhook" && l["msg"] == "webhook delivered" && l["webhook"] == second.URL
	})
	if len(got) != 1 || got[0].Type != notify.RequestPending {
		t.Errorf("the second receiver got %v, want one request.pending (the lapse was announced already)", got)
	}
	if n := len(first.await(t, 3)); n != 3 {
		t.Errorf("the first receiver, no longer configured, got %d events, want 3", n)
	}
	first.checkAgainstOpenAPI(t)
}

func TestWebhookCaddyfile(t *testing.T) {
	t.Parallel()
	cases := []struct{ input, want, wantErr string }{
		{input: "tokengate {\n webhook https://hooks.example.com/tg {\n  secret {env.S}\n  events request.pending token.revoked\n }\n webhook https://b.example.com/ {\n  secret {env.T}\n }\n}",
			want: `{"webhooks":[{"url":"https://hooks.example.com/tg","secret":"{env.S}","events":["request.pending","token.revoked"]},{"url":"https://b.example.com/","secret":"{env.T}"}]}`},
		{input: "tokengate {\n webhook https://hooks.example.com/tg\n}", wantErr: "webhook needs a secret"},
		{input: "tokengate {\n webhook {\n  secret x\n }\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n webhook https://a https://b {\n  secret x\n }\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n webhook https://a {\n  secret\n }\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n webhook https://a {\n  secret x\n  retries 3\n }\n}", wantErr: `unrecognized webhook subdirective "retries"`},
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
