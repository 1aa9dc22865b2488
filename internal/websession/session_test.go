package websession_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/internal/websession"
)

type clock struct{ now atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.now.Load()) }
func (c *clock) Advance(d time.Duration) { c.now.Add(int64(d)) }

func setup(t *testing.T) (*bolt.Store, *clock) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "tokens.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{}
	c.now.Store(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC).UnixNano())
	return db, c
}

// signIn starts a session for principal and returns the cookie the
// browser got.
func signIn(t *testing.T, m *websession.Manager, host string, principal string, carried ...*http.Cookie) *http.Cookie {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "http://"+host+"/console/callback", nil)
	for _, c := range carried {
		r.AddCookie(c)
	}
	if _, err := m.Start(context.Background(), w, r, principal, []string{"approvers"}); err != nil {
		t.Fatal(err)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("sign-in set %d cookies, want 1", len(cookies))
	}
	return cookies[0]
}

func load(m *websession.Manager, host string, c *http.Cookie) (*websession.Session, error) {
	r := httptest.NewRequest("GET", "http://"+host+"/console/", nil)
	if c != nil {
		r.AddCookie(c)
	}
	return m.Load(context.Background(), r)
}

func TestSessionCookieAttributes(t *testing.T) {
	db, c := setup(t)
	m := websession.New(db, websession.Config{Now: c.Now})
	local := signIn(t, m, "127.0.0.1:8443", "alice")
	if !local.HttpOnly || local.SameSite != http.SameSiteStrictMode || local.Path != "/" || local.Secure || local.MaxAge != 0 {
		t.Fatalf("loopback cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure, no Max-Age", local)
	}
	if lh := signIn(t, m, "localhost:8443", "alice"); lh.Secure {
		t.Fatalf("localhost over http got a Secure cookie, which the browser would not send back")
	}
	remote := signIn(t, m, "gateway.example.com", "alice")
	if !remote.Secure || remote.Name != "__Host-tokengate_console" || !remote.HttpOnly || remote.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie for a non-loopback host %+v: want Secure, __Host- prefixed, HttpOnly, Strict", remote)
	}
	if len(local.Value) < 40 {
		t.Fatalf("session id of %d characters: too short to be unguessable", len(local.Value))
	}
}

func TestSessionWorksOnEveryNodeAndEndsOnAll(t *testing.T) {
	db, c := setup(t)
	nodeA := websession.New(db, websession.Config{Now: c.Now})
	nodeB := websession.New(db, websession.Config{Now: c.Now})
	cookie := signIn(t, nodeA, "localhost:8443", "alice")
	s, err := load(nodeB, "localhost:8443", cookie)
	if err != nil || s.Principal != "alice" || len(s.Groups) != 1 {
		t.Fatalf("node B: %+v, %v", s, err)
	}
	// Signing out on B ends it on A.
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "http://localhost:8443/console/logout", nil)
	r.AddCookie(cookie)
	if err := nodeB.End(context.Background(), w, r); err != nil {
		t.Fatal(err)
	}
	if cleared := w.Result().Cookies(); len(cleared) != 1 || cleared[0].MaxAge >= 0 {
		t.Fatalf("sign-out did not clear the cookie: %+v", cleared)
	}
	if _, err := load(nodeA, "localhost:8443", cookie); !errors.Is(err, websession.ErrNoSession) {
		t.Fatalf("node A after sign-out on B: %v, want ErrNoSession", err)
	}
	// The store keeps only the id's hash.
	raw := sha256.Sum256([]byte(cookie.Value))
	if _, err := db.GetSession(context.Background(), raw[:]); err == nil {
		t.Fatal("the session is found by the plain hash of its id: the store key must be a tagged hash")
	}
}

func TestSignInIssuesANewID(t *testing.T) {
	db, c := setup(t)
	m := websession.New(db, websession.Config{Now: c.Now})
	planted := signIn(t, m, "localhost:8443", "mallory")
	fresh := signIn(t, m, "localhost:8443", "alice", planted)
	if fresh.Value == planted.Value {
		t.Fatal("sign-in kept the id the browser carried")
	}
	if _, err := load(m, "localhost:8443", planted); !errors.Is(err, websession.ErrNoSession) {
		t.Fatalf("the carried session after a new sign-in: %v, want ErrNoSession", err)
	}
	if s, err := load(m, "localhost:8443", fresh); err != nil || s.Principal != "alice" {
		t.Fatalf("the new session: %+v, %v", s, err)
	}
}

func TestIdleAndAbsoluteTimeouts(t *testing.T) {
	db, c := setup(t)
	m := websession.New(db, websession.Config{Now: c.Now, Idle: 30 * time.Minute, Absolute: 12 * time.Hour})
	idle := signIn(t, m, "localhost:8443", "alice")
	c.Advance(29 * time.Minute)
	if _, err := load(m, "localhost:8443", idle); err != nil {
		t.Fatalf("29 minutes idle: %v", err)
	}
	c.Advance(29 * time.Minute) // 29 since the last use: still in
	if _, err := load(m, "localhost:8443", idle); err != nil {
		t.Fatalf("used 29 minutes ago: %v", err)
	}
	c.Advance(31 * time.Minute)
	if _, err := load(m, "localhost:8443", idle); !errors.Is(err, websession.ErrExpired) {
		t.Fatalf("31 minutes idle: %v, want ErrExpired", err)
	}
	if _, err := load(m, "localhost:8443", idle); !errors.Is(err, websession.ErrNoSession) {
		t.Fatalf("an expired session is deleted: %v, want ErrNoSession", err)
	}

	busy := signIn(t, m, "localhost:8443", "alice")
	for range 12 * 3 {
		c.Advance(20 * time.Minute)
		if _, err := load(m, "localhost:8443", busy); err != nil {
			if !errors.Is(err, websession.ErrExpired) {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("a session used every 20 minutes outlived its 12-hour absolute timeout")
}

func TestCSRFTokenIsPerSessionAndPurpose(t *testing.T) {
	db, c := setup(t)
	m := websession.New(db, websession.Config{Now: c.Now})
	a, _ := load(m, "localhost:8443", signIn(t, m, "localhost:8443", "alice"))
	b, _ := load(m, "localhost:8443", signIn(t, m, "localhost:8443", "bob"))
	token := a.CSRFToken("approve req-1")
	if !a.CheckCSRF("approve req-1", token) {
		t.Fatal("the session's own token is refused")
	}
	if a.CheckCSRF("approve req-2", token) || b.CheckCSRF("approve req-1", token) || a.CheckCSRF("approve req-1", "") {
		t.Fatal("a token for another purpose or session, or none, is accepted")
	}
}

func TestSignInStateSurvivesTheRoundTripOnly(t *testing.T) {
	w := httptest.NewRecorder()
	begin := websession.BeginSignIn(w, httptest.NewRequest("GET", "http://localhost:8443/console/login", nil))
	cookies := w.Result().Cookies()
	if len(cookies) != 1 || cookies[0].SameSite != http.SameSiteLaxMode || cookies[0].Path != websession.CallbackPath || !cookies[0].HttpOnly || cookies[0].MaxAge <= 0 {
		t.Fatalf("sign-in cookie %+v: want HttpOnly, Lax (the return is a cross-site navigation), the callback's path, short-lived", cookies)
	}
	sum := sha256.Sum256([]byte(begin.Verifier))
	if begin.Challenge != base64.RawURLEncoding.EncodeToString(sum[:]) || len(begin.Verifier) < 43 {
		t.Fatal("the PKCE challenge is not S256 of a verifier of at least 43 characters")
	}
	if begin.State == begin.Nonce || begin.State == begin.Verifier {
		t.Fatal("state, nonce and verifier must differ")
	}
	callback := func(state string, c *http.Cookie) (websession.SignIn, error) {
		r := httptest.NewRequest("GET", "http://localhost:8443/console/callback?code=x&state="+state, nil)
		if c != nil {
			r.AddCookie(c)
		}
		return websession.FinishSignIn(httptest.NewRecorder(), r)
	}
	got, err := callback(begin.State, cookies[0])
	if err != nil || got != begin {
		t.Fatalf("the genuine callback: %+v, %v", got, err)
	}
	if _, err := callback("forged", cookies[0]); !errors.Is(err, websession.ErrSignInState) {
		t.Fatalf("a forged state: %v", err)
	}
	if _, err := callback(begin.State, nil); !errors.Is(err, websession.ErrSignInState) {
		t.Fatalf("a callback in a browser that did not start the sign-in: %v", err)
	}
}
