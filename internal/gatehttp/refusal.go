package gatehttp

import (
	"encoding/json"
	"net/http"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/ratelimit"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// Answer is how a refused call is answered: the status of its refusal's
// class and the RFC 6750 error code.
type Answer struct {
	Status int
	Error  string
}

// The RFC 6750 challenges, by the error code they carry.
const (
	challengeScope   = `Bearer realm="tokengate", error="insufficient_scope"`
	challengeInvalid = `Bearer realm="tokengate", error="invalid_token"`
	// RFC 6750 section 3.1: a request without credentials gets the
	// challenge but no error code.
	challengeAbsent = `Bearer realm="tokengate"`
)

// SetRefusalHeaders sets the headers of the answer to a refused call (res
// has a Refusal) and says how it is answered. The headers are the same
// whoever writes the body: this package (WriteRefusal), the management
// API's problem details or the server's own error routes.
func SetRefusalHeaders(h http.Header, res gateway.Result) Answer {
	class := res.Refusal.Class
	a := Answer{Status: class.Status(), Error: "insufficient_scope"}
	challenge := challengeScope
	switch class {
	case reason.Unavailable:
		a.Error, challenge = "temporarily_unavailable", ""
		h.Set("Retry-After", "1")
	case reason.Absent:
		a.Error, challenge = "invalid_token", challengeAbsent
	case reason.Invalid:
		a.Error, challenge = "invalid_token", challengeInvalid
	case reason.TooManyRequests:
		// The token is good; it has only to wait.
		a.Error, challenge = "too_many_requests", ""
		if !res.RateLimit.Limit.IsZero() {
			h.Set("Retry-After", res.RateLimit.RetryAfter())
		}
	case reason.BadRequest:
		// The request itself is the problem, not its credential: no
		// challenge.
		a.Error, challenge = "invalid_request", ""
	}
	if challenge != "" {
		h.Set("WWW-Authenticate", challenge)
	}
	SetRateLimitFields(h, res.RateLimit)
	// A refusal is about this caller at this moment: no cache may keep it,
	// whoever writes the body.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	return a
}

// WriteRefusal writes the data plane's answer to a refused call after
// SetRefusalHeaders: {"error","reason","request_id"}, never the token.
func WriteRefusal(w http.ResponseWriter, a Answer, code, requestID string) {
	body, _ := json.Marshal(map[string]string{"error": a.Error, "reason": code, "request_id": requestID})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.Status)
	_, _ = w.Write(append(body, '\n'))
}

// The rate-limit fields' names as Go's header maps key them, made once.
var (
	rateLimitPolicyKey = http.CanonicalHeaderKey(ratelimit.PolicyField)
	rateLimitStateKey  = http.CanonicalHeaderKey(ratelimit.StateField)
)

// SetRateLimitFields tells the client its rate limit, on every answer to
// a call that had one: RateLimit-Policy and RateLimit.
func SetRateLimitFields(h http.Header, d ratelimit.Decision) {
	if d.Limit.IsZero() {
		return
	}
	h[rateLimitPolicyKey] = []string{d.PolicyValue()}
	h[rateLimitStateKey] = []string{d.StateValue()}
}
