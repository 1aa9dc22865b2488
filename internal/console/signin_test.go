package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/console"
	"github.com/tokengate/caddy-tokengate/internal/identity"
	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

// TestSignInThroughTheProvider walks the authorization code flow as a
// browser does: the console sends it to the real provider, the person
// signs in on the provider's own login form, and the provider sends it
// back to the callback with the code.
func TestSignInThroughTheProvider(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	verifier, err := identity.NewPerson(context.Background(), identity.PersonConfig{Issuer: op.Issuer(), Audience: oidcop.CLIClientID})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *console.Config) {
		c.Identity = &console.OIDC{Issuer: op.Issuer(), ClientID: oidcop.CLIClientID, Verifier: verifier}
	})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	follow := func(resp *http.Response, err error) *url.URL {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 3 {
			t.Fatalf("%s: %d, want a redirect\n%s", resp.Request.URL, resp.StatusCode, body)
		}
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}

	toProvider := follow(browser.Get(f.origin + "/console/"))
	if toProvider.Path != "/console/login" {
		t.Fatalf("signed out, /console/ sent the browser to %s", toProvider)
	}
	authorize := follow(browser.Get(toProvider.String()))
	q := authorize.Query()
	if !strings.HasPrefix(authorize.String(), op.Issuer()) || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("nonce") == "" {
		t.Fatalf("authorization request %s: want the provider, S256 PKCE, state and nonce", authorize)
	}
	if q.Get("redirect_uri") != f.origin+"/console/callback" {
		t.Fatalf("redirect_uri %q, want %s/console/callback", q.Get("redirect_uri"), f.origin)
	}
	loginForm := follow(browser.Get(authorize.String()))
	authRequestID := loginForm.Query().Get("authRequestID")
	back := follow(browser.PostForm(op.Issuer()+"/login/username", url.Values{"id": {authRequestID}, "username": {"bob"}, "password": {oidcop.Password}}))
	callback := follow(browser.Get(back.String()))
	if !strings.HasPrefix(callback.String(), f.origin+"/console/callback?") {
		t.Fatalf("the provider sent the browser to %s, want the console's callback", callback)
	}
	// A forged callback (someone else's code, a made-up state) is refused.
	forged := *callback
	fq := forged.Query()
	fq.Set("state", "forged")
	forged.RawQuery = fq.Encode()
	resp, err := browser.Get(forged.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a callback with a forged state: %d, want 400", resp.StatusCode)
	}
	// The forged callback left the attempt alone: the genuine one works.
	resp, err = browser.Get(callback.String())
	if err != nil {
		t.Fatal(err)
	}
	landing, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// A page that moves on by itself, not a redirect: a redirect would
	// still be part of the provider's cross-site navigation, and the
	// browser would hold back the Strict session cookie.
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(landing), `<meta http-equiv="refresh" content="0;url=/console/">`) {
		t.Fatalf("the callback answered %d:\n%s", resp.StatusCode, landing)
	}
	// The code was redeemed once; the same callback again is refused
	// (its attempt cookie is gone).
	resp, err = browser.Get(callback.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the callback replayed: %d, want 400", resp.StatusCode)
	}
	resp, err = browser.Get(f.origin + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Signed in as <strong>bob</strong>") {
		t.Fatalf("inbox after sign-in: %d\n%s", resp.StatusCode, body)
	}
}

// TestSignInRefusesWhomTheAPIRefuses: the console verifies ID tokens with
// the API's verifier, so oidc's allow_groups keeps a person out of both.
func TestSignInRefusesWhomTheAPIRefuses(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	verifier, err := identity.NewPerson(context.Background(), identity.PersonConfig{Issuer: op.Issuer(), Audience: oidcop.CLIClientID, AllowGroups: []string{"approvers"}})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *console.Config) {
		c.Identity = &console.OIDC{Issuer: op.Issuer(), ClientID: oidcop.CLIClientID, Verifier: verifier}
	})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	location := func(resp *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
		return loc.String()
	}
	authorize := location(browser.Get(location(browser.Get(f.origin + "/console/login"))))
	form, _ := url.Parse(location(browser.Get(authorize)))
	back := location(browser.PostForm(op.Issuer()+"/login/username", url.Values{"id": {form.Query().Get("authRequestID")}, "username": {"alice"}, "password": {oidcop.Password}}))
	callback := location(browser.Get(back))
	resp, err := browser.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "signin_not_allowed") {
		t.Fatalf("alice (developers) with allow_groups approvers: %d\n%s", resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, "tokengate_console") && c.Name != "tokengate_console_signin" && c.Value != "" {
			t.Fatalf("a refused sign-in set a session cookie %s", c.Name)
		}
	}
}
