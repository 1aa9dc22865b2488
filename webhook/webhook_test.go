package webhook_test

import (
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/notify"
	"github.com/tokengate/caddy-tokengate/store"
	"github.com/tokengate/caddy-tokengate/webhook"
)

// The example of the Standard Webhooks specification: its secret, id,
// timestamp and payload sign to its signature, so that any receiver
// library following the specification verifies what tokengate sends.
func TestSpecificationExample(t *testing.T) {
	key, err := webhook.Key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	const id, ts, want = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	body := []byte(`{"test": 2432232314}`)
	if got := webhook.Sign(key, id, time.Unix(ts, 0), body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	h := http.Header{}
	h.Set(webhook.IDHeader, id)
	h.Set(webhook.TimestampHeader, strconv.Itoa(ts))
	// Several signatures, space separated, while a secret changes: one
	// valid v1 is enough, whatever its position.
	h.Set(webhook.SignatureHeader, "v1,bm90IGl0 v1a,"+want[3:]+" "+want)
	if err := webhook.Verify(key, h, body, time.Unix(ts+60, 0), webhook.DefaultTolerance); err != nil {
		t.Fatalf("Verify of the specification's example: %v", err)
	}
}

// Verify refuses every delivery a receiver must refuse, each with its
// own error.
func TestVerifyRefuses(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"type":"token.revoked","id":"evt_1"}`)
	now := time.Unix(1_800_000_000, 0)
	signed := func(id string, at time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set(webhook.IDHeader, id)
		h.Set(webhook.TimestampHeader, strconv.FormatInt(at.Unix(), 10))
		h.Set(webhook.SignatureHeader, sig)
		return h
	}
	good := webhook.Sign(key, "evt_1", now, body)
	noTimestamp := signed("evt_1", now, good)
	noTimestamp.Del(webhook.TimestampHeader)
	badTimestamp := signed("evt_1", now, good)
	badTimestamp.Set(webhook.TimestampHeader, "soon")
	cases := []struct {
		name string
		h    http.Header
		body []byte
		key  []byte
		want error
	}{
		{"no headers", http.Header{}, body, key, webhook.ErrMissingHeaders},
		{"no timestamp", noTimestamp, body, key, webhook.ErrMissingHeaders},
		{"timestamp not a number", badTimestamp, body, key, webhook.ErrMissingHeaders},
		{"tampered body", signed("evt_1", now, good), []byte(strings.Replace(string(body), "evt_1", "evt_2", 1)), key, webhook.ErrSignature},
		{"another id", signed("evt_2", now, good), body, key, webhook.ErrSignature},
		{"another key", signed("evt_1", now, good), body, []byte("another key of enough length, 32b"), webhook.ErrSignature},
		{"only an unknown version", signed("evt_1", now, "v2,"+good[3:]), body, key, webhook.ErrSignature},
		{"replayed late", signed("evt_1", now.Add(-6*time.Minute), webhook.Sign(key, "evt_1", now.Add(-6*time.Minute), body)), body, key, webhook.ErrStale},
		{"from the future", signed("evt_1", now.Add(6*time.Minute), webhook.Sign(key, "evt_1", now.Add(6*time.Minute), body)), body, key, webhook.ErrStale},
	}
	for _, c := range cases {
		if err := webhook.Verify(c.key, c.h, c.body, now, webhook.DefaultTolerance); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
	if err := webhook.Verify(key, signed("evt_1", now, good), body, now, webhook.DefaultTolerance); err != nil {
		t.Errorf("the untouched delivery: %v", err)
	}
}

// Key reads a Standard Webhooks secret as the bytes it encodes and any
// other secret as its own bytes, and refuses short or broken ones without
// echoing them.
func TestKey(t *testing.T) {
	raw := []byte("twenty-four random bytes")
	if key, err := webhook.Key("whsec_" + base64.StdEncoding.EncodeToString(raw)); err != nil || string(key) != string(raw) {
		t.Errorf("whsec_ secret: %q %v", key, err)
	}
	plain := "a plain secret of thirty-two ch."
	if key, err := webhook.Key(plain); err != nil || string(key) != plain {
		t.Errorf("plain secret: %q %v", key, err)
	}
	for _, bad := range []string{"", "short plain secret", "whsec_not base64!!", "whsec_" + base64.StdEncoding.EncodeToString(raw[:23])} {
		_, err := webhook.Key(bad)
		if !errors.Is(err, webhook.ErrSecret) {
			t.Errorf("Key(%q) = %v, want ErrSecret", bad, err)
		}
		if err != nil && bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("the error echoes the secret: %v", err)
		}
	}
}

// A receiver built on this package verifies real deliveries of
// tokengate's dispatcher over HTTP, which also still sends the older
// Tokengate-Signature header.
func TestReceiverVerifiesRealDeliveries(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	key, err := webhook.Key(secret)
	if err != nil {
		t.Fatal(err)
	}
	type delivery struct {
		verified, legacy error
		id               string
	}
	got := make(chan delivery, 1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- delivery{
			verified: webhook.Verify(key, r.Header, body, time.Now(), webhook.DefaultTolerance),
			legacy:   webhook.VerifyLegacy(key, r.Header.Get(notify.SignatureHeader), body, time.Now(), webhook.DefaultTolerance),
			id:       r.Header.Get(webhook.IDHeader),
		}
	}))
	defer receiver.Close()
	d, err := notify.New([]notify.Hook{{URL: receiver.URL, Secret: key}}, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	defer d.Stop()

	now := time.Now().UTC()
	revoked := store.Token{ID: "tok_webhook", Owner: "etl", Purpose: "nightly load", HeldBy: "alice",
		Scopes: []string{"billing:read"}, Services: []string{"billing"}, ExpiresAt: now.Add(time.Hour), RevokedAt: now, RevokedBy: "bob"}
	e := notify.ForToken(notify.TokenRevoked, &revoked, now)
	d.Publish(e)
	select {
	case del := <-got:
		if del.verified != nil || del.legacy != nil || del.id != e.ID {
			t.Errorf("delivery %q: standard %v, Tokengate-Signature %v", del.id, del.verified, del.legacy)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
}
