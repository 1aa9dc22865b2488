package signin_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/signin"
	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

// prompt collects what a flow tells the user, for the test to act on it.
type prompt struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (p *prompt) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

// await returns the first submatch of re once the prompt shows it.
func (p *prompt) await(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		p.mu.Lock()
		m := re.FindStringSubmatch(p.buf.String())
		p.mu.Unlock()
		if m != nil {
			return m[1]
		}
	}
	t.Fatalf("the prompt never matched %s:\n%s", re, p.buf.String())
	return ""
}

var (
	authURLLine  = regexp.MustCompile(`(?m)^  (http://\S+/auth\?\S+)$`)
	userCodeLine = regexp.MustCompile(`(?m)^  ([A-Z0-9-]+)$`)
)

type outcome struct {
	sess signin.Session
	err  error
}

// startCode runs the code flow in the background and returns the
// authorization URL it printed.
func startCode(t *testing.T, c *signin.Client) (string, chan outcome) {
	t.Helper()
	p := new(prompt)
	c.Prompt = p
	done := make(chan outcome, 1)
	go func() {
		s, err := c.Code(context.Background(), time.Minute)
		done <- outcome{s, err}
	}()
	return p.await(t, authURLLine), done
}

func follow(t *testing.T, loc *url.URL) (int, string) {
	t.Helper()
	resp, err := http.Get(loc.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCodeFlowWithPKCEAndLoopbackRedirect(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	c := &signin.Client{Issuer: op.Issuer(), ClientID: oidcop.CLIClientID}
	authURL, done := startCode(t, c)

	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	redirect, _ := url.Parse(q.Get("redirect_uri"))
	if redirect.Scheme != "http" || redirect.Hostname() != "127.0.0.1" || redirect.Port() == "" || redirect.Path != "/callback" {
		t.Errorf("redirect_uri %s, want http://127.0.0.1:<port>/callback", redirect)
	}
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || q.Get("state") == "" || q.Get("nonce") == "" {
		t.Errorf("authorization request without PKCE S256, state or nonce: %s", q.Encode())
	}
	if !strings.Contains(q.Get("scope"), "offline_access") {
		t.Errorf("scope %q asks for no refresh token", q.Get("scope"))
	}

	loc := op.Authorize(t, authURL, "alice")
	if status, body := follow(t, loc); status != 200 || !strings.Contains(body, "Signed in") {
		t.Fatalf("callback answered %d %s", status, body)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	s := res.sess
	if s.Subject != "alice" || s.IDToken == "" || s.RefreshToken == "" || s.Issuer != op.Issuer() || s.ClientID != oidcop.CLIClientID {
		t.Fatalf("session of %q at %s for %s (ID token %v, refresh token %v)", s.Subject, s.Issuer, s.ClientID, s.IDToken != "", s.RefreshToken != "")
	}
	if d := time.Until(s.Expiry); d < 50*time.Minute || d > 61*time.Minute {
		t.Errorf("expiry %s is not the ID token's one hour", s.Expiry)
	}
	// One-shot: the listener is gone once the sign-in is answered.
	if _, err := http.Get(loc.String()); err == nil {
		t.Error("the redirect listener still answers after the sign-in")
	}
}

// A request to the callback with another state (a forged link, a stale
// tab) must not end the sign-in, let alone with its code.
func TestCodeFlowRefusesAnotherState(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	authURL, done := startCode(t, &signin.Client{Issuer: op.Issuer(), ClientID: oidcop.CLIClientID})
	loc := op.Authorize(t, authURL, "alice")

	forged := *loc
	q := forged.Query()
	q.Set("state", "forged")
	forged.RawQuery = q.Encode()
	if status, _ := follow(t, &forged); status != http.StatusBadRequest {
		t.Fatalf("callback with another state answered %d, want 400", status)
	}
	select {
	case res := <-done:
		t.Fatalf("the sign-in ended on a forged state: %q %v", res.sess.Subject, res.err)
	default:
	}
	if status, _ := follow(t, loc); status != 200 {
		t.Fatalf("the real callback answered %d", status)
	}
	if res := <-done; res.err != nil || res.sess.Subject != "alice" {
		t.Fatalf("%q %v", res.sess.Subject, res.err)
	}
}

// What an IdP sends when the person declines: the redirect with error and
// the right state ends the sign-in with that error.
func TestCodeFlowReportsTheProvidersRefusal(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	authURL, done := startCode(t, &signin.Client{Issuer: op.Issuer(), ClientID: oidcop.CLIClientID})
	u, _ := url.Parse(authURL)
	denied, _ := url.Parse(u.Query().Get("redirect_uri"))
	denied.RawQuery = url.Values{"error": {"access_denied"}, "error_description": {"the user said no"}, "state": {u.Query().Get("state")}}.Encode()
	if status, _ := follow(t, denied); status != http.StatusBadRequest {
		t.Fatalf("callback with an error answered %d", status)
	}
	res := <-done
	if res.err == nil || !strings.Contains(res.err.Error(), "access_denied") {
		t.Fatalf("err %v", res.err)
	}
}

func TestCodeFlowTimesOut(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	c := &signin.Client{Issuer: op.Issuer(), ClientID: oidcop.CLIClientID, Prompt: io.Discard}
	_, err := c.Code(context.Background(), time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no sign-in within") {
		t.Fatalf("err %v", err)
	}
}

func TestDeviceFlow(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	p := new(prompt)
	c := &signin.Client{Issuer: op.Issuer(), ClientID: oidcop.CLIClientID, Prompt: p}
	done := make(chan outcome, 1)
	go func() {
		s, err := c.Device(context.Background())
		done <- outcome{s, err}
	}()
	code := p.await(t, userCodeLine)
	if !strings.Contains(p.buf.String(), op.Issuer()+"/device") {
		t.Errorf("prompt names no verification URI:\n%s", p.buf.String())
	}
	op.ApproveDevice(t, code, "bob")
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.sess.Subject != "bob" || res.sess.IDToken == "" || res.sess.RefreshToken == "" {
		t.Fatalf("session of %q (ID token %v, refresh token %v)", res.sess.Subject, res.sess.IDToken != "", res.sess.RefreshToken != "")
	}
}

// signedIn runs the code flow for user to the end.
func signedIn(t *testing.T, op *oidcop.OP, clientID, user string) signin.Session {
	t.Helper()
	authURL, done := startCode(t, &signin.Client{Issuer: op.Issuer(), ClientID: clientID})
	follow(t, op.Authorize(t, authURL, user))
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	return res.sess
}

func TestFreshRefreshesOnlyWhenTheIDTokenIsAboutToExpire(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	s := signedIn(t, op, oidcop.CLIClientID, "alice")

	same, changed, err := signin.Fresh(context.Background(), s, nil, nil)
	if err != nil || changed || same.IDToken != s.IDToken {
		t.Fatalf("a token valid for an hour was refreshed: %v %v", changed, err)
	}
	// A clock one minute before the expiry: inside the margin.
	later := func() time.Time { return s.Expiry.Add(-time.Minute) }
	next, changed, err := signin.Fresh(context.Background(), s, nil, later)
	if err != nil || !changed {
		t.Fatalf("not refreshed: %v %v", changed, err)
	}
	if next.IDToken == s.IDToken || next.Subject != "alice" || next.Expiry.Before(s.Expiry) || next.RefreshToken == "" {
		t.Fatalf("refreshed session of %s until %s (new ID token %v, refresh token %v)", next.Subject, next.Expiry, next.IDToken != s.IDToken, next.RefreshToken != "")
	}
	// The example OP rotates refresh tokens: the old one is spent.
	if _, _, err := signin.Fresh(context.Background(), s, nil, later); !errors.Is(err, signin.ErrSignInExpired) {
		t.Fatalf("refresh with a spent refresh token: %v", err)
	}
	if _, changed, err := signin.Fresh(context.Background(), next, nil, func() time.Time { return next.Expiry.Add(-time.Minute) }); err != nil || !changed {
		t.Fatalf("refresh with the new refresh token: %v %v", changed, err)
	}
}

func TestFreshWithoutAUsableRefreshTokenSaysSignInAgain(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	s := signedIn(t, op, oidcop.CLIClientID, "alice")
	expired := func() time.Time { return s.Expiry.Add(time.Hour) }

	noRefresh := s
	noRefresh.RefreshToken = ""
	if _, _, err := signin.Fresh(context.Background(), noRefresh, nil, expired); !errors.Is(err, signin.ErrSignInExpired) {
		t.Fatalf("without a refresh token: %v", err)
	}
	bad := s
	bad.RefreshToken = "not-a-refresh-token"
	if _, _, err := signin.Fresh(context.Background(), bad, nil, func() time.Time { return s.Expiry.Add(-time.Minute) }); !errors.Is(err, signin.ErrSignInExpired) {
		t.Fatalf("with a refresh token the OP does not know: %v", err)
	}
}

func TestRevokeEndsTheRefreshToken(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	s := signedIn(t, op, oidcop.CLIClientID, "alice")
	revoked, err := signin.Revoke(context.Background(), s, nil)
	if err != nil || !revoked {
		t.Fatalf("revoke: %v %v", revoked, err)
	}
	if _, _, err := signin.Fresh(context.Background(), s, nil, func() time.Time { return s.Expiry.Add(-time.Minute) }); !errors.Is(err, signin.ErrSignInExpired) {
		t.Fatalf("refresh after revocation: %v", err)
	}
}

func TestInsecureURLsAreRefused(t *testing.T) {
	for _, raw := range []string{"http://idp.example.com", "ftp://idp.example.com", "http://10.0.0.1:8080"} {
		if err := signin.RequireSecure("issuer", raw); err == nil {
			t.Errorf("%s accepted", raw)
		}
	}
	for _, raw := range []string{"https://idp.example.com", "http://127.0.0.1:5556", "http://[::1]:80", "http://localhost:1"} {
		if err := signin.RequireSecure("issuer", raw); err != nil {
			t.Errorf("%s refused: %v", raw, err)
		}
	}
	c := &signin.Client{Issuer: "http://idp.example.com", ClientID: "x", Prompt: io.Discard}
	if _, err := c.Code(context.Background(), time.Minute); err == nil || !strings.Contains(err.Error(), "must be https") {
		t.Fatalf("code flow with an http issuer: %v", err)
	}
}

func TestStoreFilesSessionsPrivately(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokengate")
	st := &signin.Store{Path: filepath.Join(dir, "credentials.json")}
	if _, ok, err := st.Load("https://gw.example.com"); ok || err != nil {
		t.Fatalf("empty store: %v %v", ok, err)
	}
	s := signin.Session{Issuer: "https://idp.example.com", ClientID: "cli", IDToken: "id", RefreshToken: "rt", Subject: "alice"}
	if err := st.Save("https://GW.example.com/", s); err != nil {
		t.Fatal(err)
	}
	if err := st.Save("https://other.example.com", signin.Session{IDToken: "other"}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := st.Load("https://gw.example.com")
	if err != nil || !ok || got.IDToken != "id" || got.RefreshToken != "rt" {
		t.Fatalf("load %+v %v %v", got, ok, err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, st.Path: 0o600} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s has mode %04o, want %04o", path, info.Mode().Perm(), want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left beside the credentials: %v", entries)
	}

	if _, ok, err := st.Delete("https://gw.example.com"); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if _, ok, _ := st.Load("https://gw.example.com"); ok {
		t.Fatal("still signed in after delete")
	}
	if _, ok, _ := st.Load("https://other.example.com"); !ok {
		t.Fatal("delete forgot another API's sign-in")
	}
	gone, err := st.DeleteAll()
	if err != nil || len(gone) != 1 {
		t.Fatalf("delete all: %v %v", gone, err)
	}
}

// Tokens in a file others can read may have been copied: they are not
// used, and the error says what to do.
func TestStoreRefusesAFileOthersCanRead(t *testing.T) {
	st := &signin.Store{Path: filepath.Join(t.TempDir(), "tokengate", "credentials.json")}
	if err := st.Save("https://gw.example.com", signin.Session{IDToken: "id"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(st.Path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Load("https://gw.example.com"); err == nil || !strings.Contains(err.Error(), "readable by other users") {
		t.Fatalf("load of a 0644 file: %v", err)
	}
}

// A folder made by hand with the usual 0755 is made private on the next
// save.
func TestStoreMakesAnExistingFolderPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokengate")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st := &signin.Store{Path: filepath.Join(dir, "credentials.json")}
	if err := st.Save("https://gw.example.com", signin.Session{IDToken: "id"}); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(dir); info.Mode().Perm() != 0o700 {
		t.Fatalf("folder mode %04o", info.Mode().Perm())
	}
}

func TestKeyNormalisesTheAPIURL(t *testing.T) {
	for _, raw := range []string{"https://GW.example.com", "https://gw.example.com/", " https://gw.example.com//"} {
		if k, err := signin.Key(raw); err != nil || k != "https://gw.example.com" {
			t.Errorf("Key(%q) = %q, %v", raw, k, err)
		}
	}
	for _, raw := range []string{"gw.example.com", "https://user:pw@gw.example.com", "ftp://gw.example.com"} {
		if _, err := signin.Key(raw); err == nil {
			t.Errorf("Key(%q) accepted", raw)
		}
	}
}

// A refresh must not change who is signed in: a session stored as
// mallory's whose refresh token the IdP answers for alice is refused, and
// nothing is saved.
func TestFreshRefusesARefreshForAnotherUser(t *testing.T) {
	op := oidcop.Start(t, oidcop.Options{})
	s := signedIn(t, op, oidcop.CLIClientID, "alice")
	s.Subject = "mallory"
	later := func() time.Time { return s.Expiry.Add(-time.Minute) }
	next, changed, err := signin.Fresh(context.Background(), s, nil, later)
	if err == nil || changed || next.IDToken != s.IDToken || !strings.Contains(err.Error(), "another user") {
		t.Fatalf("refresh for another subject: changed %v, err %v", changed, err)
	}
}
