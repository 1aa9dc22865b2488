// Package reason declares every built-in reason code once: its name, the
// class of answer it gets (which decides the HTTP status) and its priority
// when a call has several. The handler, the metrics, the lifecycle and the
// README table are derived from this list, so a code cannot answer 401 in
// one place and 403 in another.
//
// Policies may emit codes of their own; those are Forbidden and come after
// every built-in code.
package reason

// Class says what kind of refusal a code is.
type Class uint8

const (
	// Forbidden: a good token may not do this (403, insufficient_scope).
	// Every code a custom policy emits is in this class.
	Forbidden Class = iota
	// Invalid: the token itself is no good (401, invalid_token).
	Invalid
	// Absent: no credential was presented (401, a challenge without an
	// error code, as RFC 6750 section 3.1 asks).
	Absent
	// BadRequest: the request itself is malformed (400).
	BadRequest
	// Unavailable: the gateway could not decide or record the call, and
	// failed closed (503).
	Unavailable
	// TooMany: a good token called more often than its rate limit allows
	// (429, with Retry-After).
	TooMany
)

// The built-in codes.
const (
	TokenMissing      = "token_missing"
	TokenMalformed    = "token_malformed"
	TokenUnknown      = "token_unknown"
	TokenRevoked      = "token_revoked"
	TokenRotated      = "token_rotated"
	TokenExpired      = "token_expired"
	TokenNotYetValid  = "token_not_yet_valid"
	UsesExhausted     = "uses_exhausted"
	PathInvalid       = "path_invalid"
	ServiceNotBound   = "service_not_bound"
	IPNotAllowed      = "ip_not_allowed"
	ScopeMissing      = "scope_missing"
	StoreUnavailable  = "store_unavailable"
	PolicyUnavailable = "policy_unavailable"
	AuditUnavailable  = "audit_unavailable"
)

// RateLimited refuses a call over its token's rate limit, and an attempt
// at an endpoint that takes no credential (the token exchange) that came
// too often from one client address: 429 with Retry-After.
const RateLimited = "rate_limited"

// Code is one built-in reason code.
type Code struct {
	Name  string
	Class Class
	// Means is the one line the README shows for it.
	Means string
}

// Builtin lists the built-in codes, most telling first: when a call has
// several reasons, the client is told the first of them in this order.
// (The audit line carries all of them.)
var Builtin = []Code{
	{TokenMissing, Absent, "no credential in the configured header (or another scheme than Bearer)"},
	{TokenMalformed, Invalid, "not a well-formed token: empty, repeated, too long, bad checksum"},
	{TokenUnknown, Invalid, "well-formed, but no such token"},
	{TokenRevoked, Invalid, "the token was revoked"},
	{TokenRotated, Invalid, "the old secret of a rotated token, after its grace period"},
	{TokenExpired, Invalid, "past expires_at"},
	{TokenNotYetValid, Invalid, "before not_before"},
	{UsesExhausted, Invalid, "a max_uses token with no use left"},
	{PathInvalid, BadRequest, "a path Caddy's matchers and the policy could read differently"},
	{ServiceNotBound, Forbidden, "the token is not bound to this route's service"},
	{IPNotAllowed, Forbidden, "the client address is outside the token's CIDRs"},
	{ScopeMissing, Forbidden, "the token lacks the scope this method needs"},
	{RateLimited, TooMany, "over the token's rate limit (its own or the policy's); `Retry-After` is the seconds until its window resets"},
	{StoreUnavailable, Unavailable, "the token store failed"},
	{PolicyUnavailable, Unavailable, "the policy could not be evaluated (an error, never an allow)"},
	{AuditUnavailable, Unavailable, "the audit line of an allowed call could not be written"},
}

var byName = func() map[string]int {
	m := make(map[string]int, len(Builtin))
	for i, c := range Builtin {
		m[c.Name] = i
	}
	return m
}()

// Lookup returns the built-in code of that name.
func Lookup(name string) (Code, bool) {
	i, ok := byName[name]
	if !ok {
		return Code{}, false
	}
	return Builtin[i], true
}

// ClassOf returns the class of a code; custom codes are Forbidden.
func ClassOf(name string) Class {
	c, _ := Lookup(name)
	return c.Class
}

// Main picks the reason the client is told: the built-in code that comes
// first in Builtin, else the first custom code. reasons must not be empty.
func Main(reasons []string) string {
	best, bestRank := reasons[0], len(Builtin)
	for _, r := range reasons {
		if i, ok := byName[r]; ok && i < bestRank {
			best, bestRank = r, i
		}
	}
	return best
}
