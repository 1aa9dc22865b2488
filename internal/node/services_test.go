package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/notify"
)

// A webhook's secret goes through Expand, and one that cannot be expanded
// fails the assembly without echoing it.
func TestWebhookSecretIsExpanded(t *testing.T) {
	o, _ := options(t)
	o.Webhooks = []notify.HookConfig{{URL: "http://127.0.0.1:1/hook", Secret: "{env.MISSING}"}}
	o.Expand = func(s string, _, _ bool) (string, error) {
		if strings.Contains(s, "{env.MISSING}") {
			return "", errors.New("unknown placeholder")
		}
		return s, nil
	}
	_, err := Assemble(context.Background(), o)
	if err == nil {
		t.Fatal("a webhook whose secret cannot be expanded was accepted")
	}
	if strings.Contains(err.Error(), "MISSING") {
		t.Errorf("the error echoes the secret's setting: %v", err)
	}
}

// A started node delivers what its management service publishes to the
// configured webhooks, and Stop delivers what is queued before it returns.
func TestStartedNodeDeliversWebhooks(t *testing.T) {
	var mu sync.Mutex
	var got []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e struct {
			Type string `json:"type"`
		}
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		got = append(got, e.Type)
		mu.Unlock()
	}))
	defer hook.Close()
	o, _ := options(t)
	o.Webhooks = []notify.HookConfig{{URL: hook.URL, Secret: "s3cret-for-hmac-32-bytes-long-xx"}}
	p, err := Assemble(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if p.Webhooks == nil || p.Manage.Events == nil {
		t.Fatal("a configured webhook built no dispatcher, or the management service does not publish to it")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, tok, err := p.Lifecycle.Issue(ctx, "test", lifecycle.Spec{Owner: "alice", Purpose: "unit", Scopes: []string{"billing:read"}, Services: []string{"billing"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Manage.Revoke(ctx, manage.Principal{Name: "local-operator", Local: true}, tok.ID, "unit test"); err != nil {
		t.Fatal(err)
	}
	p.Stop()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "token.revoked" {
		t.Errorf("webhook got %q, want one token.revoked", got)
	}
}
