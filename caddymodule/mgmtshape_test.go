package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/mgmtapi"
)

// problem is an RFC 9457 problem details body as a client reads it.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Reason string `json:"reason"`
}

// wantProblem checks that r is a problem details answer with status and
// reason, its members agreeing with the HTTP status line.
func wantProblem(t *testing.T, what string, r response, status int, reason string) problem {
	t.Helper()
	var p problem
	if err := json.Unmarshal(r.body, &p); err != nil || r.status != status || p.Status != status || p.Reason != reason ||
		p.Type != "about:blank" || p.Title != http.StatusText(status) || r.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s: got %d %s %s, want %d problem+json with reason %s", what, r.status, r.header.Get("Content-Type"), r.body, status, reason)
	}
	return p
}

// TestManagementErrorsAreProblemDetails: every refusal of the management
// API, from a bad filter to an unknown route, has the one RFC 9457 shape
// with the reason code; a known path with another method is 405 with
// Allow, on the management API and on Caddy's admin endpoint alike.
func TestManagementErrorsAreProblemDetails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.bootstrap()
	auth := bearer(e.approver)
	_, id := e.issue(billingReader(nil))

	r := call(t, "DELETE", e.mgmtURL+"/v1/tokens", auth...)
	wantProblem(t, "DELETE /v1/tokens", r, http.StatusMethodNotAllowed, "method_not_allowed")
	if got := r.header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("DELETE /v1/tokens: Allow %q, want GET, HEAD", got)
	}
	r = call(t, "GET", e.mgmtURL+"/v1/tokens/"+id+"/revoke", auth...)
	wantProblem(t, "GET revoke", r, http.StatusMethodNotAllowed, "method_not_allowed")
	if got := r.header.Get("Allow"); got != "POST" {
		t.Errorf("GET revoke: Allow %q, want POST", got)
	}
	r = call(t, "PUT", e.mgmtURL+"/v1/requests", auth...)
	if got := r.header.Get("Allow"); r.status != http.StatusMethodNotAllowed || got != "GET, HEAD, POST" {
		t.Errorf("PUT /v1/requests: %d Allow %q, want 405 GET, HEAD, POST", r.status, got)
	}
	r = call(t, "DELETE", e.adminURL+"/tokengate/tokens")
	wantProblem(t, "admin DELETE /tokengate/tokens", r, http.StatusMethodNotAllowed, "method_not_allowed")
	if got := r.header.Get("Allow"); got != "GET, HEAD, POST" {
		t.Errorf("admin DELETE /tokengate/tokens: Allow %q, want GET, HEAD, POST", got)
	}

	wantProblem(t, "unknown route", call(t, "GET", e.mgmtURL+"/v1/nothing", auth...), http.StatusNotFound, "route_unknown")
	wantProblem(t, "unknown token", call(t, "GET", e.mgmtURL+"/v1/tokens/tok_nothing", auth...), http.StatusNotFound, "token_not_found")

	for _, path := range []string{"/v1/tokens?state=bogus", "/v1/requests?state=bogus", "/v1/requests?status=bogus"} {
		p := wantProblem(t, path, call(t, "GET", e.mgmtURL+path, auth...), http.StatusBadRequest, "state_invalid")
		if p.Detail == "" {
			t.Errorf("%s: no detail naming the states", path)
		}
	}
	wantProblem(t, "admin ?state=bogus", call(t, "GET", e.adminURL+"/tokengate/tokens?state=bogus"), http.StatusBadRequest, "state_invalid")
	for _, path := range []string{"/v1/tokens?state=active", "/v1/requests?state=pending", "/v1/requests?status=pending"} {
		if r := call(t, "GET", e.mgmtURL+path, auth...); r.status != http.StatusOK {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
}

// TestListsArePaged: limit and the opaque cursor of the Link rel="next"
// walk a listing page by page, each token once; a bad limit or cursor is
// a 400; api.Client follows the pages past the default limit.
func TestListsArePaged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	want := map[string]bool{}
	for range mgmtapi.ListLimit + 3 {
		_, id := e.issue(billingReader(nil))
		want[id] = true
	}

	seen := map[string]bool{}
	next, pages := e.adminURL+"/tokengate/tokens?owner=alice&limit=40", 0
	for next != "" {
		r := call(t, "GET", next)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", next, r.status, r.body)
		}
		page := decode[[]TokenView](t, r.body)
		if len(page) > 40 {
			t.Fatalf("page of %d items, limit 40", len(page))
		}
		for _, tok := range page {
			if seen[tok.ID] {
				t.Fatalf("token %s listed twice", tok.ID)
			}
			seen[tok.ID] = true
		}
		pages++
		next = ""
		if link := r.header.Get("Link"); link != "" {
			target, _, _ := strings.Cut(link, ";")
			next = e.adminURL + strings.Trim(target, "<>")
		}
	}
	if pages != 3 || len(seen) != len(want) {
		t.Fatalf("%d pages, %d of %d tokens", pages, len(seen), len(want))
	}
	if r := call(t, "GET", e.adminURL+"/tokengate/tokens"); len(decode[[]TokenView](t, r.body)) != mgmtapi.ListLimit || r.header.Get("Link") == "" {
		t.Fatalf("default page: %d items, Link %q", len(decode[[]TokenView](t, r.body)), r.header.Get("Link"))
	}

	for _, q := range []string{"limit=0", "limit=1001", "limit=ten"} {
		wantProblem(t, q, call(t, "GET", e.adminURL+"/tokengate/tokens?"+q), http.StatusBadRequest, "limit_invalid")
	}
	wantProblem(t, "bad cursor", call(t, "GET", e.adminURL+"/tokengate/tokens?cursor=%21%21"), http.StatusBadRequest, "cursor_invalid")

	all, err := (&api.Client{BaseURL: e.adminURL + "/tokengate"}).ListTokens(context.Background(), api.TokenFilter{Owner: "alice"})
	if err != nil || len(all) != len(want) {
		t.Fatalf("client listed %d of %d: %v", len(all), len(want), err)
	}
}
