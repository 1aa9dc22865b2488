package signin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tokengate/caddy-tokengate/internal/textcheck"
)

// DefaultScopes are asked for when the gateway names none: openid for the
// ID token, offline_access for a refresh token, email and profile for the
// claims a principal_claim of email needs.
var DefaultScopes = []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess, "email", "profile"}

// RefreshMargin is how long before its expiry an ID token is refreshed:
// enough for the call it is sent with to arrive, and for a little clock
// skew between this machine and the gateway.
const RefreshMargin = 2 * time.Minute

// ErrSignInExpired says the sign-in can no longer be refreshed (no refresh
// token, or the IdP refused it): the user signs in again.
var ErrSignInExpired = errors.New("the sign-in has expired")

// Client signs in to one IdP as one OAuth client. The client is public (a
// command line program cannot keep a secret): PKCE protects the code flow.
type Client struct {
	Issuer   string
	ClientID string
	Scopes   []string // DefaultScopes when empty
	// HTTP calls the IdP; nil means a client with a 30 s timeout.
	HTTP *http.Client
	// Prompt receives what the user must do (stderr); nil discards it.
	Prompt io.Writer
	// Browser, when set, is given the authorization URL to open; the URL
	// is printed either way.
	Browser func(url string)
	// Now is the clock for expiry checks; nil means time.Now.
	Now func() time.Time
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) prompt() io.Writer {
	if c.Prompt == nil {
		return io.Discard
	}
	return c.Prompt
}

func (c *Client) scopes() []string {
	if len(c.Scopes) == 0 {
		return DefaultScopes
	}
	return c.Scopes
}

// RequireSecure refuses a URL a credential would travel to in the clear:
// anything but https, except http to a loopback address, which never
// leaves the machine.
func RequireSecure(what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%s %s is not a URL", what, textcheck.Printable(raw))
	}
	if u.Scheme == "https" || (u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil
	}
	return fmt.Errorf("%s %s must be https (plain http only to 127.0.0.1, ::1 or localhost)", what, textcheck.Printable(raw))
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// discover reads the IdP's metadata and returns it with the OAuth client
// configuration, the context for calls to the IdP attached.
func (c *Client) discover(ctx context.Context) (context.Context, *oidc.Provider, *oauth2.Config, error) {
	if c.Issuer == "" || c.ClientID == "" {
		return ctx, nil, nil, errors.New("the issuer and the client id of the sign-in are not known")
	}
	if err := RequireSecure("issuer", c.Issuer); err != nil {
		return ctx, nil, nil, err
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	ctx = context.WithValue(oidc.ClientContext(ctx, hc), oauth2.HTTPClient, hc)
	p, err := oidc.NewProvider(ctx, c.Issuer)
	if err != nil {
		return ctx, nil, nil, fmt.Errorf("reading the identity provider's configuration at %s: %v", textcheck.Printable(c.Issuer), err)
	}
	ep := p.Endpoint()
	for what, u := range map[string]string{"authorization endpoint": ep.AuthURL, "token endpoint": ep.TokenURL} {
		if err := RequireSecure(what, u); err != nil {
			return ctx, nil, nil, err
		}
	}
	if ep.DeviceAuthURL != "" && RequireSecure("device authorization endpoint", ep.DeviceAuthURL) != nil {
		ep.DeviceAuthURL = "" // never used rather than used in the clear
	}
	ep.AuthStyle = oauth2.AuthStyleInParams // a public client: client_id in the form, no secret
	return ctx, p, &oauth2.Config{ClientID: c.ClientID, Endpoint: ep, Scopes: c.scopes()}, nil
}

// session checks the ID token in tok (signature, issuer, audience, expiry
// and, for the code flow, the nonce) and makes a session of it.
func (c *Client) session(ctx context.Context, p *oidc.Provider, tok *oauth2.Token, nonce string) (Session, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Session{}, fmt.Errorf("the identity provider sent no ID token (does client %s allow the openid scope?)", textcheck.Printable(c.ClientID))
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: c.ClientID, Now: c.now}).Verify(ctx, raw)
	if err != nil {
		return Session{}, fmt.Errorf("the identity provider's ID token does not verify: %v", err)
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return Session{}, errors.New("the ID token was not issued for this sign-in (nonce mismatch)")
	}
	return Session{
		Issuer: c.Issuer, ClientID: c.ClientID, Scopes: c.scopes(),
		IDToken: raw, RefreshToken: tok.RefreshToken, Expiry: idt.Expiry, Subject: idt.Subject,
	}, nil
}

// randomString is 32 random bytes, base64url: state and nonce.
func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Code signs in with the authorization code flow and PKCE (S256). The
// redirect goes to a listener on 127.0.0.1 on a port chosen now
// (RFC 8252 section 7.3); it takes one answer carrying the state of this
// sign-in and closes. The user opens the printed URL in a browser on this
// machine; timeout bounds the wait.
func (c *Client) Code(ctx context.Context, timeout time.Duration) (Session, error) {
	ctx, p, conf, err := c.discover(ctx)
	if err != nil {
		return Session{}, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Session{}, fmt.Errorf("listening for the sign-in's redirect: %v", err)
	}
	defer l.Close()
	conf.RedirectURL = fmt.Sprintf("http://127.0.0.1:%d/callback", l.Addr().(*net.TCPAddr).Port)
	verifier, state, nonce := oauth2.GenerateVerifier(), randomString(), randomString()
	authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
	fmt.Fprintf(c.prompt(), "To sign in, open this URL in a browser on this machine:\n\n  %s\n\nWaiting for the sign-in (up to %s)...\n", textcheck.Printable(authURL), timeout)
	if c.Browser != nil {
		c.Browser(authURL)
	}
	code, err := awaitCode(ctx, l, state, timeout)
	if err != nil {
		return Session{}, err
	}
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Session{}, fmt.Errorf("exchanging the authorization code: %v", describe(err))
	}
	return c.session(ctx, p, tok, nonce)
}

// awaitCode serves the redirect on l until one request to /callback
// carries state, then returns its code (or the IdP's error). Requests with
// another state (a stale tab, a forged link) are refused and waited past.
func awaitCode(ctx context.Context, l net.Listener, state string, timeout time.Duration) (string, error) {
	type result struct {
		code string
		err  error
	}
	results := make(chan result, 1)
	var once sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		q := r.URL.Query()
		if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintln(w, "This is not the sign-in the command line is waiting for (state mismatch).")
			return
		}
		answered := false
		once.Do(func() {
			answered = true
			res := result{code: q.Get("code")}
			switch {
			case q.Get("error") != "":
				res.err = fmt.Errorf("the identity provider refused the sign-in: %s %s", textcheck.Printable(q.Get("error")), textcheck.Printable(q.Get("error_description")))
			case res.code == "":
				res.err = errors.New("the identity provider's redirect carried no code")
			}
			if res.err != nil {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintln(w, "Sign-in failed; see the terminal.")
			} else {
				fmt.Fprintln(w, "Signed in. You can close this tab and go back to the terminal.")
			}
			results <- res
		})
		if !answered {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprintln(w, "This sign-in has already been answered.")
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	// The handler hands the code over before its answer is written: close
	// gracefully, so the browser gets "Signed in" rather than a dropped
	// connection, but never wait on a stuck client for long.
	defer func() {
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(shutdown) != nil {
			srv.Close()
		}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case res := <-results:
		return res.code, res.err
	case <-timer.C:
		return "", fmt.Errorf("no sign-in within %s; run the command again (or sign in with --device on a machine without a browser)", timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Device signs in with the device authorization grant: the user opens the
// verification URL on any device, enters the code shown, and this polls
// the IdP until the sign-in is approved, denied or expired.
func (c *Client) Device(ctx context.Context) (Session, error) {
	ctx, p, conf, err := c.discover(ctx)
	if err != nil {
		return Session{}, err
	}
	if conf.Endpoint.DeviceAuthURL == "" {
		return Session{}, fmt.Errorf("the identity provider %s offers no device authorization endpoint over https; sign in without --device", textcheck.Printable(c.Issuer))
	}
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return Session{}, fmt.Errorf("starting the device sign-in: %v", describe(err))
	}
	fmt.Fprintf(c.prompt(), "To sign in, open %s on any device and enter the code\n\n  %s\n\n", textcheck.Printable(da.VerificationURI), textcheck.Printable(da.UserCode))
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(c.prompt(), "(or open %s)\n", textcheck.Printable(da.VerificationURIComplete))
	}
	fmt.Fprintln(c.prompt(), "Waiting for the sign-in...")
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		return Session{}, fmt.Errorf("device sign-in: %v", describe(err))
	}
	return c.session(ctx, p, tok, "")
}

// Fresh returns sess as it is while its ID token is valid for longer than
// RefreshMargin, else refreshed with its refresh token (the bool is then
// true and the caller saves the new session). The refreshed ID token must
// name the same subject (OpenID Connect Core, section 12.2).
func Fresh(ctx context.Context, sess Session, hc *http.Client, now func() time.Time) (Session, bool, error) {
	c := &Client{Issuer: sess.Issuer, ClientID: sess.ClientID, Scopes: sess.Scopes, HTTP: hc, Now: now}
	if c.now().Add(RefreshMargin).Before(sess.Expiry) {
		return sess, false, nil
	}
	if sess.RefreshToken == "" {
		return sess, false, ErrSignInExpired
	}
	ctx, p, conf, err := c.discover(ctx)
	if err != nil {
		return sess, false, err
	}
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: sess.RefreshToken}).Token()
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
		return sess, false, fmt.Errorf("%w (the identity provider refused the refresh: %v)", ErrSignInExpired, describe(err))
	}
	if err != nil {
		return sess, false, fmt.Errorf("refreshing the sign-in: %v", describe(err))
	}
	next, err := c.session(ctx, p, tok, "")
	if err != nil {
		return sess, false, err
	}
	if next.Subject != sess.Subject {
		return sess, false, fmt.Errorf("the refreshed ID token names another user (%s, not %s); sign in again", textcheck.Printable(next.Subject), textcheck.Printable(sess.Subject))
	}
	return next, true, nil
}

// describe shortens an oauth2 error to the IdP's error code and
// description, without the response body it may carry.
func describe(err error) error {
	var re *oauth2.RetrieveError
	switch {
	case !errors.As(err, &re):
		return err
	case re.ErrorCode != "":
		return fmt.Errorf("%s %s", textcheck.Printable(re.ErrorCode), textcheck.Printable(re.ErrorDescription))
	}
	return fmt.Errorf("HTTP %d from the identity provider", re.Response.StatusCode)
}

// Revoke asks the IdP to revoke the session's refresh token (RFC 7009),
// when its metadata names a revocation endpoint; it reports whether it
// did. Signing out works without it: the tokens are forgotten either way.
func Revoke(ctx context.Context, sess Session, hc *http.Client) (bool, error) {
	if sess.RefreshToken == "" {
		return false, nil
	}
	c := &Client{Issuer: sess.Issuer, ClientID: sess.ClientID, HTTP: hc}
	ctx, p, _, err := c.discover(ctx)
	if err != nil {
		return false, err
	}
	var meta struct {
		Revocation string `json:"revocation_endpoint"`
	}
	if err := p.Claims(&meta); err != nil || meta.Revocation == "" {
		return false, nil
	}
	if err := RequireSecure("revocation endpoint", meta.Revocation); err != nil {
		return false, err
	}
	form := url.Values{"token": {sess.RefreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {sess.ClientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, meta.Revocation, strings.NewReader(form.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("revoking the refresh token: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("revoking the refresh token: HTTP %d from the identity provider", resp.StatusCode)
	}
	return true, nil
}
