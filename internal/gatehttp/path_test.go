package gatehttp

import (
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// TestCleanPathOutsideRoutes covers request targets no /billing/* route
// would hand to the handler.
func TestCleanPathOutsideRoutes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url, clean string
		ok         bool
	}{
		{"http://host", "/", true},
		{"*", "", false},
		{"/", "/", true},
		{"/..", "/", true},
		{"/a/b/../../..", "/", true},
	} {
		u, err := url.ParseRequestURI(c.url)
		if err != nil {
			t.Fatal(err)
		}
		clean, _, ok := CleanPath(u.Path, u.EscapedPath())
		if clean != c.clean || ok != c.ok {
			t.Errorf("%s: %q %v, want %q %v", c.url, clean, ok, c.clean, c.ok)
		}
	}
}

func BenchmarkCleanPath(b *testing.B) {
	for _, target := range []string{"/billing/invoices/inv_8d2KQ", "/billing/invoices/", "/billing//a/../invoices/%70df"} {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(target, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, ok := CleanPath(u.Path, u.EscapedPath()); !ok {
					b.Fatal("refused")
				}
			}
		})
	}
}

// TestReadCall: the call is read from the request as the gate needs it;
// a path CleanPath refuses is kept as sent, for the audit line.
func TestReadCall(t *testing.T) {
	r := httptest.NewRequest("GET", "http://api.example.com/billing//a/../%70df", nil)
	r.Header.Set("Authorization", "Bearer tg_abc")
	r.Header.Set("X-Tenant", "acme")
	c := ReadCall(r, "billing", "Authorization", []string{"X-Tenant"}, "192.0.2.7")
	req := c.Request
	if !c.PathOK || req.Path != "/billing/pdf" || c.EscapedPath != "/billing/%70df" || req.RawPath != "/billing//a/../%70df" {
		t.Errorf("path %q escaped %q raw %q ok %v", req.Path, c.EscapedPath, req.RawPath, c.PathOK)
	}
	if c.Service != "billing" || req.Method != "GET" || req.Host != "api.example.com" || req.RemoteIP != "192.0.2.7" || req.Headers["x-tenant"] != "acme" {
		t.Errorf("call %+v", c.Call)
	}
	if c.Secret != "tg_abc" || c.Problem != "" {
		t.Errorf("credential %q problem %q", c.Secret, c.Problem)
	}

	r = httptest.NewRequest("GET", "/billing/a%2Fb", nil)
	c = ReadCall(r, "billing", "Authorization", nil, "")
	if c.PathOK || c.Request.Path != "/billing/a%2Fb" || c.Problem != reason.TokenMissing {
		t.Errorf("refused path: %q ok %v problem %q", c.Request.Path, c.PathOK, c.Problem)
	}
}
