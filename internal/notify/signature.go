package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of every delivery, beside the Standard Webhooks ones of package
// webhook.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>".
	// Deprecated: receivers check webhook-signature (package webhook);
	// this header is sent for one more release, for receivers written
	// before it.
	SignatureHeader = "Tokengate-Signature"
	// EventHeader names the event type, DeliveryHeader the event id
	// (the same on every attempt of one event).
	EventHeader    = "Tokengate-Event"
	DeliveryHeader = "Tokengate-Delivery"
)

// DefaultTolerance is the replay window Verify is meant to be used with:
// a signature older or newer than this is refused. Every attempt is
// signed afresh, so a retry after a long backoff still verifies.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify.
var (
	ErrNoSignature = errors.New("no well-formed " + SignatureHeader + " header")
	ErrStale       = errors.New("signature timestamp outside the tolerance window")
	ErrSignature   = errors.New("signature does not match the body")
)

// Sign returns the SignatureHeader value for body sent at t:
//
//	t=<unix seconds>,v1=<hex of HMAC-SHA256(secret, "<unix seconds>.<body>")>
//
// as Stripe signs its webhooks. The timestamp is inside the MAC, so a
// captured delivery cannot be replayed later under a new time.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

// Verify checks a delivery as a receiver should:
//
//  1. Read the raw request body; do not parse and re-encode it first.
//  2. From the Tokengate-Signature header take t and every v1.
//  3. Refuse when t is further than tolerance from now (DefaultTolerance
//     is 5 minutes): this bounds replays to that window.
//  4. Compute hex(HMAC-SHA256(secret, t + "." + body)) and compare it
//     with each v1 in constant time; accept when one matches.
//  5. Within the window, drop events whose id (the Tokengate-Delivery
//     header, also "id" in the body) was seen already: retries resend it.
//
// In a shell: printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$secret".
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
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
		return ErrNoSignature
	}
	if age := now.Sub(time.Unix(unix, 0)); age > tolerance || age < -tolerance {
		return ErrStale
	}
	want := []byte(mac(secret, ts, body))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), want) {
			return nil
		}
	}
	return ErrSignature
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}
