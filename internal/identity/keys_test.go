package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
