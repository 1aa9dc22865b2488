package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// refetchEvery spaces fetches of an issuer's JWKS. A token whose key is not
// in the cached set makes the verifier fetch the set again (that is how a
// key the issuer rotated in is found), but at most this often: otherwise
// every forged token with a made-up kid would cost the identity provider a
// request, and a flood of them would flood it. go-oidc's RemoteKeySet
// refetches on every failed verification, which is why this replaces it.
const refetchEvery = 5 * time.Second

// maxJWKSSize bounds the key set document read from the issuer.
const maxJWKSSize = 1 << 20

// The cached set is fetched again once it is older than the max-age of the
// issuer's Cache-Control, or keysFreshFor without one, so that a key the
// issuer withdrew (a leaked one) stops verifying within that time even
// when no token names an unknown key. minKeysFresh keeps a max-age of 0 or
// 1 from turning every call into a fetch; maxKeysFresh keeps an issuer's
// day-long max-age from trusting a withdrawn key for that long.
const (
	keysFreshFor = 5 * time.Minute
	minKeysFresh = 10 * time.Second
	maxKeysFresh = time.Hour
)

// keySet is an issuer's public keys, fetched from its jwks_uri, cached
// until they are stale (see freshness), and refetched sooner (no more often
// than refetchEvery) when a token names a key the cache does not have or
// no cached key verifies it. Stale keys keep verifying while the issuer
// cannot be reached: it is down, not withdrawing them.
type keySet struct {
	url    string
	algs   []jose.SignatureAlgorithm
	client *http.Client
	ctx    context.Context // the verifier's: fetches end with it
	now    func() time.Time

	// mu guards the fields below and is never held across a fetch: a
	// slow or hanging issuer must not stall tokens the cached keys verify.
	mu        sync.Mutex
	keys      []jose.JSONWebKey
	fetched   bool      // keys came from a successful fetch
	stale     time.Time // when keys need a fetch before they are used again
	lastFetch time.Time
	lastErr   error         // of the last fetch, kept until the next one
	inflight  chan struct{} // closed when the fetch in progress ends
}

func newKeySet(ctx context.Context, url string, algs []string, client *http.Client, now func() time.Time) *keySet {
	k := &keySet{url: url, client: client, ctx: ctx, now: now}
	for _, a := range algs {
		k.algs = append(k.algs, jose.SignatureAlgorithm(a))
	}
	return k
}

// errNoKey is a signature no key of the issuer verifies. go-oidc wraps it
// as "failed to verify signature: ...", which classify maps to
// id_token_signature; a failed fetch is wrapped as "fetching keys ..." and
// becomes issuer_unavailable.
var errNoKey = errors.New("no key of the issuer verifies the signature")

// VerifySignature implements oidc.KeySet. A token whose kid is in the
// cached set is checked against that key alone: key material never
// changes under a kid, so a failure there is a bad signature and needs no
// fetch. A kid the set lacks (or no kid at all, and no cached key fits)
// fetches the set again when the last fetch is refetchEvery old; sooner,
// the set just fetched is the issuer's answer.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, k.algs)
	if err != nil {
		return nil, fmt.Errorf("malformed jwt: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, err := k.cached()
	if err != nil {
		return nil, fmt.Errorf("fetching keys %w", err)
	}
	if p, ok := verifyWith(jws, kid, keys); ok {
		return p, nil
	}
	if kid != "" && hasKey(keys, kid) {
		return nil, errNoKey
	}
	keys, err = k.refetch()
	if err != nil {
		return nil, fmt.Errorf("fetching keys %w", err)
	}
	if p, ok := verifyWith(jws, kid, keys); ok {
		return p, nil
	}
	return nil, errNoKey
}

func verifyWith(jws *jose.JSONWebSignature, kid string, keys []jose.JSONWebKey) ([]byte, bool) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		if p, err := jws.Verify(&keys[i]); err == nil {
			return p, true
		}
	}
	return nil, false
}

func hasKey(keys []jose.JSONWebKey, kid string) bool {
	for i := range keys {
		if keys[i].KeyID == kid {
			return true
		}
	}
	return false
}

// reachable reports whether the last fetch of the keys, if any, succeeded.
func (k *keySet) reachable() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastErr == nil
}

// cached returns the keys, fetching them the first time, once they are
// stale, and (while the issuer could never be reached) again once
// refetchEvery passed. Stale keys are answered without a fetch while
// another call is fetching them (no call waits on a slow issuer when
// there are keys) and when the fetch fails (the issuer is unreachable).
func (k *keySet) cached() ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	if k.fetched && (k.fresh() || k.inflight != nil) {
		keys := k.keys
		k.mu.Unlock()
		return keys, nil
	}
	had := k.fetched
	k.mu.Unlock()
	keys, err := k.refetch()
	if err != nil && had {
		k.mu.Lock()
		keys = k.keys
		k.mu.Unlock()
		return keys, nil
	}
	return keys, err
}

// fresh reports whether the cached keys may be used without a fetch. A
// clock set back before the last fetch makes them stale: how long ago
// that fetch was is then unknown. k.mu must be held.
func (k *keySet) fresh() bool {
	now := k.now()
	return !now.Before(k.lastFetch) && now.Before(k.stale)
}

// refetch fetches the keys again unless the last fetch is younger than
// refetchEvery: then it returns what that fetch gave, waiting for it only
// while no fetch has ever succeeded (there is nothing else to answer with).
func (k *keySet) refetch() ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	if since := k.now().Sub(k.lastFetch); !k.lastFetch.IsZero() && since >= 0 && since < refetchEvery {
		wait := k.inflight
		if wait == nil || k.fetched {
			keys, err := k.keys, k.lastErr
			k.mu.Unlock()
			return keys, err
		}
		k.mu.Unlock()
		select {
		case <-wait:
		case <-k.ctx.Done():
			return nil, k.ctx.Err()
		}
		k.mu.Lock()
		keys, err := k.keys, k.lastErr
		k.mu.Unlock()
		return keys, err
	}
	k.lastFetch = k.now()
	done := make(chan struct{})
	k.inflight = done
	k.mu.Unlock()

	keys, freshFor, err := k.fetch()

	k.mu.Lock()
	defer k.mu.Unlock()
	defer close(done)
	k.inflight = nil
	if err != nil {
		// The cached keys stay for tokens they verify; this error answers
		// the others until the next fetch.
		k.lastErr = err
		return nil, err
	}
	k.keys, k.lastErr, k.fetched = keys, nil, true
	k.stale = k.lastFetch.Add(freshFor)
	return keys, nil
}

// freshness is how long a key set answered with header h may be used
// before it is fetched again: the max-age of its Cache-Control, within
// [minKeysFresh, maxKeysFresh], or keysFreshFor without one. no-cache and
// no-store ask for a fetch every time, which minKeysFresh spaces out.
func freshness(h http.Header) time.Duration {
	for _, d := range strings.Split(h.Get("Cache-Control"), ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), "=")
		switch strings.ToLower(name) {
		case "no-cache", "no-store":
			return minKeysFresh
		case "max-age":
			secs, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64)
			if err != nil || secs < 0 {
				return keysFreshFor
			}
			if secs > int64(maxKeysFresh/time.Second) {
				return maxKeysFresh
			}
			return max(time.Duration(secs)*time.Second, minKeysFresh)
		}
	}
	return keysFreshFor
}

func (k *keySet) fetch() ([]jose.JSONWebKey, time.Duration, error) {
	ctx, cancel := context.WithTimeout(k.ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize))
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("%s answered %s", k.url, resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, 0, fmt.Errorf("%s: not a JWKS: %v", k.url, err)
	}
	var keys []jose.JSONWebKey
	for _, key := range set.Keys {
		// Only public signing keys: a symmetric or private key in a JWKS
		// is a misconfigured issuer, never something to verify with.
		if key.Use != "" && key.Use != "sig" || !key.Valid() || !key.IsPublic() {
			continue
		}
		keys = append(keys, key)
	}
	return keys, freshness(resp.Header), nil
}
