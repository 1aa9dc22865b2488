// Package reason declares every built-in reason code once: its name, the
// class of answer it gets (which decides the HTTP status) and its priority
// when a call has several. The handler, the metrics, the lifecycle and the
// README table are derived from this list, so a code cannot answer 401 in
// one place and 403 in another.
//
// Policies may emit codes of their own; those are Forbidden and come after
// every built-in code.
//
// The management API's codes (Management), the identity checks' (Identity),
// the token exchange's (Exchange), the web console's (Console) and the leak
// intake's (Leaks) are declared here too, each with
// its class, so that one Refusal type carries every refusal, the metrics
// label every declared code, and the docs' tables are rendered from these
// lists (Markdown).
package reason

import (
	"fmt"
	"net/http"
	"strings"
)

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
	// NotFound: no token, request or route of that name (404).
	NotFound
	// Conflict: it exists, but its state does not allow this (409).
	Conflict
	// Gone: it was possible once and never will be again (410).
	Gone
	// TooLarge: the body exceeds its bound (413).
	TooLarge
	// UnsupportedMedia: the body is not of the media type served (415).
	UnsupportedMedia
	// MethodNotAllowed: the path is served, not with this method (405).
	MethodNotAllowed
	// TooManyRequests: an attempt past its limit (429).
	TooManyRequests
	// Internal: the answer itself could not be made (500); nothing about
	// the call is wrong, and trying again will not help.
	Internal
)

// classStatus is the HTTP status of each class, in one place.
var classStatus = [...]int{
	Forbidden:        http.StatusForbidden,
	Invalid:          http.StatusUnauthorized,
	Absent:           http.StatusUnauthorized,
	BadRequest:       http.StatusBadRequest,
	Unavailable:      http.StatusServiceUnavailable,
	NotFound:         http.StatusNotFound,
	Conflict:         http.StatusConflict,
	Gone:             http.StatusGone,
	TooLarge:         http.StatusRequestEntityTooLarge,
	UnsupportedMedia: http.StatusUnsupportedMediaType,
	MethodNotAllowed: http.StatusMethodNotAllowed,
	TooManyRequests:  http.StatusTooManyRequests,
	Internal:         http.StatusInternalServerError,
}

// Status is the HTTP status a refusal of class c is answered with.
func (c Class) Status() int {
	if int(c) < len(classStatus) {
		return classStatus[c]
	}
	return http.StatusInternalServerError
}

// ClassOfStatus is the class a status answers, for a code whose class is
// not known here; 401 reads as Invalid.
func ClassOfStatus(status int) (Class, bool) {
	for c, s := range classStatus {
		if s == status {
			return Class(c), true
		}
	}
	return 0, false
}

// Refusal is the one refusal type: a declared code, its class (which
// decides the status) and a detail for people that never holds a secret.
// Reasons, when set, are every code behind a policy refusal, Code among
// them, so an audit line never reads two reasons as one.
type Refusal struct {
	Code    string
	Class   Class
	Detail  string
	Reasons []string
}

// New is a refusal with the declared class of code.
func New(code, detail string) *Refusal {
	return &Refusal{Code: code, Class: DeclaredClass(code), Detail: detail}
}

// Newf is New with a formatted detail.
func Newf(code, format string, args ...any) *Refusal {
	return New(code, fmt.Sprintf(format, args...))
}

func (r *Refusal) Error() string {
	if r.Detail == "" {
		return r.Code
	}
	return r.Code + ": " + r.Detail
}

// AllReasons is every reason code of the refusal: Reasons, or Code alone.
func (r *Refusal) AllReasons() []string {
	if len(r.Reasons) > 0 {
		return r.Reasons
	}
	return []string{r.Code}
}

// OfCall is the data plane's refusal of a call with these reasons (at
// least one): the code the client is told (Main), its class among the
// built-in codes (a policy's own codes are Forbidden, even one spelt like a
// management code) and every reason, for the audit line. It has no
// detail: a data-plane answer never says more than its code.
func OfCall(reasons []string) *Refusal {
	code := Main(reasons)
	return &Refusal{Code: code, Class: ClassOf(code), Reasons: reasons}
}

// Unavailable reports whether the refusal is a failure on our side (a
// store, a policy, an issuer that could not be reached), not the caller's.
func (r *Refusal) Unavailable() bool { return r.Class == Unavailable }

// Forbidden reports whether the caller is known but may not do this.
func (r *Refusal) Forbidden() bool { return r.Class == Forbidden }

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
	{RateLimited, TooManyRequests, "over the token's rate limit (its own or the policy's); `Retry-After` is the seconds until its window resets"},
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

// declared indexes every code of every list by name; all is every code
// once, in list order. A code in two lists (token_revoked refuses a call
// and a rotation) keeps the class of its first.
var declared, all = func() (map[string]Code, []Code) {
	m := map[string]Code{}
	var all []Code
	for _, list := range [][]Code{Builtin, Management, Identity, Exchange, Console, Leaks} {
		for _, c := range list {
			if _, dup := m[c.Name]; !dup {
				m[c.Name] = c
				all = append(all, c)
			}
		}
	}
	return m, all
}()

// All returns every declared code once: the metrics' label values.
func All() []Code { return all }

// Declared reports whether name is a code of one of the lists.
func Declared(name string) bool {
	_, ok := declared[name]
	return ok
}

// DeclaredClass is the class of a declared code; an undeclared one is
// Forbidden, as a policy's own codes are.
func DeclaredClass(name string) Class { return declared[name].Class }

// Markdown renders codes as a Markdown table: reason, status, meaning.
// The docs' tables are this output, checked by a test.
func Markdown(codes []Code) string {
	var b strings.Builder
	b.WriteString("| reason | status | means |\n|---|---|---|\n")
	for _, c := range codes {
		fmt.Fprintf(&b, "| `%s` | %d | %s |\n", c.Name, c.Class.Status(), c.Means)
	}
	return b.String()
}

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
