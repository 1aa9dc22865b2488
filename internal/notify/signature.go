package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
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

// A receiver checks this header with webhook.VerifyLegacy, the public
// package's verifier.

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}
