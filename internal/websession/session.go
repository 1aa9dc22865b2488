// Package websession keeps a person's console session: a random id in an
// HttpOnly, SameSite=Strict cookie, its hash in the store (so every node
// of a cluster knows it, and signing out on one ends it on all), idle and
// absolute timeouts judged by one injected clock, and CSRF tokens derived
// from the session so forms need no server-side state.
package websession

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// Store is where sessions live.
type Store interface {
	CreateSession(ctx context.Context, s *store.Session) error
	GetSession(ctx context.Context, idHash []byte) (*store.Session, error)
	TouchSession(ctx context.Context, idHash []byte, at time.Time) error
	DeleteSession(ctx context.Context, idHash []byte) error
}

// Config sets the timeouts.
type Config struct {
	// Idle ends a session unused this long; default 30 minutes.
	Idle time.Duration
	// Absolute ends a session this long after sign-in, used or not;
	// default 12 hours.
	Absolute time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Manager starts, finds and ends sessions.
type Manager struct {
	store Store
	idle  time.Duration
	abs   time.Duration
	now   func() time.Time
}

// New returns a Manager with c's timeouts (defaults filled in).
func New(s Store, c Config) *Manager {
	m := &Manager{store: s, idle: c.Idle, abs: c.Absolute, now: c.Now}
	if m.idle <= 0 {
		m.idle = 30 * time.Minute
	}
	if m.abs <= 0 {
		m.abs = 12 * time.Hour
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m
}

// Session is a live session as a handler sees it.
type Session struct {
	store.Session
	// id is the cookie's value: kept only in memory, for CSRF tokens.
	id string
}

// Errors of Load: no cookie or an unknown one, or one past a timeout.
var (
	ErrNoSession = errors.New("not signed in")
	ErrExpired   = errors.New("the session has ended; sign in again")
)

// Cookie names. On https the __Host- prefix makes the browser refuse a
// cookie set by a sibling domain or for another path; plain http (only on
// loopback) cannot use it.
const (
	secureCookie   = "__Host-tokengate_console"
	loopbackCookie = "tokengate_console"
)

// Secure reports whether the request came over https, or else whether it
// reached us on a loopback address, the one place plain http is
// acceptable (and where a Secure cookie would not be sent back).
func Secure(r *http.Request) bool {
	return r.TLS != nil || !loopback(r)
}

func loopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func cookieName(r *http.Request) string {
	if Secure(r) {
		return secureCookie
	}
	return loopbackCookie
}

func hashID(id string) []byte {
	h := sha256.Sum256([]byte("tokengate console session\x00" + id))
	return h[:]
}

// Start signs principal in: a new session id (never the one the browser
// had before, so a planted id is worthless), its hash in the store, and
// the cookie. A session the browser still carried is ended.
func (m *Manager) Start(ctx context.Context, w http.ResponseWriter, r *http.Request, principal string, groups []string) (*Session, error) {
	if old, err := r.Cookie(cookieName(r)); err == nil {
		_ = m.store.DeleteSession(ctx, hashID(old.Value))
	}
	id := rand.Text() + rand.Text() // 256 bits
	now := m.now().UTC()
	s := &Session{id: id, Session: store.Session{
		IDHash:     hashID(id),
		Principal:  principal,
		Groups:     groups,
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  now.Add(m.abs),
	}}
	if err := m.store.CreateSession(ctx, &s.Session); err != nil {
		return nil, err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     cookieName(r),
		Value:    id,
		Path:     "/",
		HttpOnly: true,
		Secure:   Secure(r),
		SameSite: http.SameSiteStrictMode,
		// A session cookie (no Max-Age): closing the browser ends it
		// on this side; the store's timeouts end it on ours.
	})
	return s, nil
}

// Load finds the request's session and checks its timeouts. A session
// past one is deleted. Use moves the idle timeout, written to the store at
// most once a minute so that a page of many requests costs one write.
func (m *Manager) Load(ctx context.Context, r *http.Request) (*Session, error) {
	c, err := r.Cookie(cookieName(r))
	if err != nil || c.Value == "" {
		return nil, ErrNoSession
	}
	stored, err := m.store.GetSession(ctx, hashID(c.Value))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	now := m.now()
	if !now.Before(stored.ExpiresAt) || !now.Before(stored.LastSeenAt.Add(m.idle)) {
		_ = m.store.DeleteSession(ctx, stored.IDHash)
		return nil, ErrExpired
	}
	if now.Sub(stored.LastSeenAt) >= time.Minute {
		if err := m.store.TouchSession(ctx, stored.IDHash, now.UTC()); err != nil {
			return nil, err
		}
		stored.LastSeenAt = now.UTC()
	}
	return &Session{Session: *stored, id: c.Value}, nil
}

// End signs the request's session out, here and on every node, and
// clears the cookie.
func (m *Manager) End(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	name := cookieName(r)
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: Secure(r), SameSite: http.SameSiteStrictMode})
	c, err := r.Cookie(name)
	if err != nil || c.Value == "" {
		return nil
	}
	if err := m.store.DeleteSession(ctx, hashID(c.Value)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// CSRFToken is the token forms of this session carry, one per purpose
// (say, "approve req-1"): a hash of the session id, which only the
// session's own pages know, so a cross-site form cannot supply it.
func (s *Session) CSRFToken(purpose string) string {
	h := sha256.Sum256([]byte("tokengate console csrf\x00" + s.id + "\x00" + purpose))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// CheckCSRF reports whether token is this session's token for purpose.
func (s *Session) CheckCSRF(purpose, token string) bool {
	return subtle.ConstantTimeCompare([]byte(s.CSRFToken(purpose)), []byte(token)) == 1
}
