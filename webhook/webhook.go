// Package webhook signs and verifies tokengate's webhook deliveries as the
// Standard Webhooks specification (https://www.standardwebhooks.com/)
// describes them, so that a receiver can check a delivery with this
// package, with any Standard Webhooks library, or by hand:
//
//	webhook-id:        the event id (evt_...), the same on every attempt
//	webhook-timestamp: unix seconds of this attempt
//	webhook-signature: v1,<base64 of HMAC-SHA256(key, id + "." + timestamp + "." + body)>
//
// The signature header may hold several space-separated signatures (while
// a secret is being changed); one valid v1 signature is enough.
//
// A receiver:
//
//	key, err := webhook.Key(os.Getenv("TOKENGATE_WEBHOOK_SECRET"))
//	...
//	body, err := io.ReadAll(r.Body) // the raw body: never parse and re-encode it first
//	if err := webhook.Verify(key, r.Header, body, time.Now(), webhook.DefaultTolerance); err != nil {
//		http.Error(w, "bad signature", http.StatusUnauthorized)
//		return
//	}
//
// and then drops an event whose webhook-id it has seen already: retries
// resend it, and a captured delivery can be replayed within the tolerance.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of every delivery. Header names are case-insensitive; the
// specification writes them in lower case.
const (
	IDHeader        = "webhook-id"
	TimestampHeader = "webhook-timestamp"
	SignatureHeader = "webhook-signature"
)

// DefaultTolerance is the replay window the specification recommends: a
// timestamp further than this from the receiver's clock is refused.
// Every attempt is signed afresh, so a late retry still verifies.
const DefaultTolerance = 5 * time.Minute

// Secret lengths. A Standard Webhooks secret ("whsec_" and base64) must
// decode to at least MinKeyLen bytes, as the specification asks; any
// other secret is used as it is written and must be at least
// MinPlainSecretLen characters.
const (
	MinKeyLen         = 24
	MinPlainSecretLen = 32
	secretPrefix      = "whsec_"
)

// Errors of Key and Verify.
var (
	ErrSecret         = errors.New("webhook secret too short or not valid base64 after whsec_")
	ErrMissingHeaders = errors.New("missing " + IDHeader + ", " + TimestampHeader + " or " + SignatureHeader + " header")
	ErrStale          = errors.New(TimestampHeader + " outside the tolerance window")
	ErrSignature      = errors.New("no " + SignatureHeader + " matches the body")
)

// Key returns the HMAC key of a webhook secret: the base64 decoding of
// what follows "whsec_" in a Standard Webhooks secret (as the
// specification's libraries read it), else the secret's own bytes. To
// hand a plain secret to a Standard Webhooks library, give it
// "whsec_" + base64(secret).
func Key(secret string) ([]byte, error) {
	encoded, standard := strings.CutPrefix(secret, secretPrefix)
	if !standard {
		if len(secret) < MinPlainSecretLen {
			return nil, fmt.Errorf("%w: a secret must be at least %d characters, or whsec_ and the base64 of at least %d random bytes", ErrSecret, MinPlainSecretLen, MinKeyLen)
		}
		return []byte(secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(key) < MinKeyLen {
		return nil, fmt.Errorf("%w: whsec_ must be followed by the standard base64 of at least %d random bytes (whsec_$(openssl rand -base64 32))", ErrSecret, MinKeyLen)
	}
	return key, nil
}

// Sign returns the webhook-signature value of body, sent as event id at t.
func Sign(key []byte, id string, t time.Time, body []byte) string {
	return "v1," + mac(key, id, strconv.FormatInt(t.Unix(), 10), body)
}

// Verify checks a delivery's headers against its raw body: the timestamp
// within tolerance of now, and one v1 signature equal (compared in
// constant time) to the HMAC of id, timestamp and body under key.
func Verify(key []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, ts, sigs := h.Get(IDHeader), h.Get(TimestampHeader), h.Get(SignatureHeader)
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrMissingHeaders
	}
	if age := now.Sub(time.Unix(unix, 0)); age > tolerance || age < -tolerance {
		return ErrStale
	}
	want := []byte(mac(key, id, ts, body))
	for sig := range strings.FieldsSeq(sigs) {
		version, value, _ := strings.Cut(sig, ",")
		if version == "v1" && hmac.Equal([]byte(value), want) {
			return nil
		}
	}
	return ErrSignature
}

func mac(key []byte, id, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte("."))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// LegacySignatureHeader is tokengate's own signature header from before
// Standard Webhooks: "t=<unix seconds>,v1=<hex HMAC-SHA256>".
//
// The gateway sends it for one more release, for receivers written before
// webhook-signature; new receivers check that one with Verify.
const LegacySignatureHeader = "Tokengate-Signature"

// Errors of VerifyLegacy.
var (
	ErrNoLegacySignature = errors.New("no well-formed " + LegacySignatureHeader + " header")
	ErrLegacyStale       = errors.New("signature timestamp outside the tolerance window")
	ErrLegacySignature   = errors.New("signature does not match the body")
)

// VerifyLegacy checks a delivery's Tokengate-Signature header (its value
// is header) with the webhook's secret as it is written:
//
//  1. Read the raw request body; do not parse and re-encode it first.
//  2. From the header take t and every v1.
//  3. Refuse when t is further than tolerance from now (DefaultTolerance):
//     this bounds replays to that window.
//  4. Compute hex(HMAC-SHA256(secret, t + "." + body)) and compare it
//     with each v1 in constant time; accept when one matches.
//
// In a shell: printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$secret".
//
// It is for receivers written before Standard Webhooks, until they move
// to Verify: the header goes away in a later release.
func VerifyLegacy(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok:
		case k == "t":
			ts = v
		case k == "v1":
			sigs = append(sigs, v)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoLegacySignature
	}
	if age := now.Sub(time.Unix(unix, 0)); age > tolerance || age < -tolerance {
		return ErrLegacyStale
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := []byte(hex.EncodeToString(m.Sum(nil)))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), want) {
			return nil
		}
	}
	return ErrLegacySignature
}
