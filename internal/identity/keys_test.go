package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// While the issuer hangs on a refetch (a token named a kid it does not
// have), tokens the cached keys verify are checked at once: no lock is
// held across the fetch.
func TestCachedKeysVerifyWhileARefetchHangs(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	release := make(chan struct{})
	var fetches atomic.Int32
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fetches.Add(1) > 1 {
			<-release // the issuer hangs from the second fetch on
		}
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	}))
	defer jwks.Close()
	defer close(release)

	sign := func(kid string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		jws, err := signer.Sign([]byte(`{"sub":"alice"}`))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	var clock atomic.Int64
	now := func() time.Time { return time.Unix(clock.Load(), 0) }
	k := newKeySet(context.Background(), jwks.URL, []string{"ES256"}, jwks.Client(), now)
	if _, err := k.VerifySignature(context.Background(), sign("k1")); err != nil {
		t.Fatalf("first token: %v", err)
	}

	clock.Add(int64(refetchEvery/time.Second) + 1)
	hanging := make(chan error, 1)
	go func() { _, err := k.VerifySignature(context.Background(), sign("unknown-kid")); hanging <- err }()
	for fetches.Load() < 2 {
		time.Sleep(time.Millisecond) // until the refetch has reached the issuer
	}
	verified := make(chan error, 1)
	go func() { _, err := k.VerifySignature(context.Background(), sign("k1")); verified <- err }()
	select {
	case err := <-verified:
		if err != nil {
			t.Fatalf("token of a cached key during the refetch: %v", err)
		}
	case <-hanging:
		t.Fatal("the refetch ended before the issuer answered")
	case <-time.After(5 * time.Second):
		t.Fatal("a token of a cached key waited for the hanging refetch")
	}
}

// jwksServer serves a key set whose keys and Cache-Control the test
// changes, or 503 while down.
type jwksServer struct {
	*httptest.Server
	mu           sync.Mutex
	keys         []jose.JSONWebKey
	cacheControl string
	down         bool
	fetches      int
}

func startJWKS(t *testing.T) *jwksServer {
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.fetches++
		if s.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if s.cacheControl != "" {
			w.Header().Set("Cache-Control", s.cacheControl)
		}
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(f func(s *jwksServer)) { s.mu.Lock(); f(s); s.mu.Unlock() }

// signedBy returns a compact JWS of claims signed by a fresh P-256 key
// with kid, and that key's public JWK.
func newSigningKey(t *testing.T, kid string) (sign func() string, public jose.JSONWebKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sign = func() string {
		jws, err := signer.Sign([]byte(`{"sub":"alice"}`))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	return sign, jose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"}
}

// A key the issuer withdrew stops verifying once the cached set is stale,
// though every token names a kid the cache knows (so no unknown kid ever
// triggers a refetch): after the set's max-age, or five minutes without
// one; a max-age below ten seconds counts as ten. While the issuer cannot
// be reached the stale keys keep verifying.
func TestWithdrawnKeyStopsVerifyingWhenTheSetIsStale(t *testing.T) {
	for _, tc := range []struct {
		cacheControl string
		fresh        time.Duration
	}{
		{"", keysFreshFor},
		{"public, max-age=60", time.Minute},
		{"max-age=1", minKeysFresh},
		{"no-store", minKeysFresh},
		{"max-age=86400", maxKeysFresh},
	} {
		t.Run(tc.cacheControl, func(t *testing.T) {
			jwks := startJWKS(t)
			leaked, leakedKey := newSigningKey(t, "leaked")
			_, nextKey := newSigningKey(t, "next")
			jwks.set(func(s *jwksServer) { s.keys, s.cacheControl = []jose.JSONWebKey{leakedKey}, tc.cacheControl })
			var clock atomic.Int64
			now := func() time.Time { return time.Unix(0, clock.Load()) }
			k := newKeySet(context.Background(), jwks.URL, []string{"ES256"}, jwks.Client(), now)
			verify := func() error { _, err := k.VerifySignature(context.Background(), leaked()); return err }
			if err := verify(); err != nil {
				t.Fatalf("before the withdrawal: %v", err)
			}

			jwks.set(func(s *jwksServer) { s.keys = []jose.JSONWebKey{nextKey} })
			clock.Add(int64(tc.fresh - time.Second))
			if err := verify(); err != nil {
				t.Fatalf("a second before the set is stale: %v", err)
			}
			clock.Add(int64(2 * time.Second))
			if err := verify(); !errors.Is(err, errNoKey) {
				t.Fatalf("the withdrawn key once the set is stale: %v, want %v", err, errNoKey)
			}
		})
	}
}

func TestStaleKeysVerifyWhileTheIssuerIsDown(t *testing.T) {
	jwks := startJWKS(t)
	sign, key := newSigningKey(t, "k1")
	jwks.set(func(s *jwksServer) { s.keys = []jose.JSONWebKey{key} })
	var clock atomic.Int64
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	k := newKeySet(context.Background(), jwks.URL, []string{"ES256"}, jwks.Client(), now)
	if _, err := k.VerifySignature(context.Background(), sign()); err != nil {
		t.Fatal(err)
	}
	jwks.set(func(s *jwksServer) { s.down = true })
	clock.Add(int64(keysFreshFor + time.Second))
	for i := range 3 {
		if _, err := k.VerifySignature(context.Background(), sign()); err != nil {
			t.Fatalf("call %d while the issuer is down: %v", i, err)
		}
	}
	// The failed fetch is not repeated on every call: refetchEvery spaces it.
	jwks.mu.Lock()
	fetches := jwks.fetches
	jwks.mu.Unlock()
	if fetches != 2 {
		t.Errorf("%d fetches, want 2 (the first, one refetch once stale)", fetches)
	}
	// Back up, and the refreshed set is used.
	jwks.set(func(s *jwksServer) { s.down, s.keys = false, nil })
	clock.Add(int64(refetchEvery + time.Second))
	if _, err := k.VerifySignature(context.Background(), sign()); !errors.Is(err, errNoKey) {
		t.Fatalf("once the issuer answers without the key: %v", err)
	}
}

// A clock set back before the last fetch does not keep a withdrawn key
// trusted, nor keep a key rotated in from being fetched.
func TestClockSetBackRefetches(t *testing.T) {
	jwks := startJWKS(t)
	leaked, leakedKey := newSigningKey(t, "leaked")
	next, nextKey := newSigningKey(t, "next")
	jwks.set(func(s *jwksServer) { s.keys = []jose.JSONWebKey{leakedKey} })
	var clock atomic.Int64
	clock.Store(int64(time.Hour))
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	k := newKeySet(context.Background(), jwks.URL, []string{"ES256"}, jwks.Client(), now)
	if _, err := k.VerifySignature(context.Background(), leaked()); err != nil {
		t.Fatal(err)
	}
	jwks.set(func(s *jwksServer) { s.keys = []jose.JSONWebKey{nextKey} })
	clock.Store(int64(time.Minute))
	if _, err := k.VerifySignature(context.Background(), next()); err != nil {
		t.Fatalf("key rotated in, after the clock went back: %v", err)
	}
	if _, err := k.VerifySignature(context.Background(), leaked()); !errors.Is(err, errNoKey) {
		t.Fatalf("withdrawn key, after the clock went back: %v", err)
	}
}
