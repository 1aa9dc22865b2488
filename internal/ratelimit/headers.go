package ratelimit

import (
	"strconv"
	"time"
)

// The response fields of draft-ietf-httpapi-ratelimit-headers (the -09
// and -10 drafts): RateLimit-Policy names a quota policy and gives its
// quota (q) and window in seconds (w); RateLimit gives, for that policy,
// the quota units remaining (r) and the seconds until the window resets
// (t). Both are Structured Field lists whose members are a policy name,
// a String, with parameters.
const (
	PolicyField = "RateLimit-Policy"
	StateField  = "RateLimit"
)

// policyName is the one policy tokengate advertises: the token's limit.
const policyName = `"token"`

// PolicyValue is the RateLimit-Policy value of d's limit, as in
// "token";q=100;w=60.
func (d Decision) PolicyValue() string {
	b := make([]byte, 0, 32)
	b = append(b, policyName...)
	b = append(b, ";q="...)
	b = strconv.AppendInt(b, d.Limit.Requests, 10)
	b = append(b, ";w="...)
	b = strconv.AppendInt(b, int64(d.Limit.Window/time.Second), 10)
	return string(b)
}

// StateValue is the RateLimit value of d, as in "token";r=42;t=17.
func (d Decision) StateValue() string {
	b := make([]byte, 0, 32)
	b = append(b, policyName...)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, d.Remaining, 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, d.resetSeconds(), 10)
	return string(b)
}

// RetryAfter is the Retry-After value of a refused call: the seconds
// until its window resets, when the budget is whole again.
func (d Decision) RetryAfter() string {
	return strconv.FormatInt(d.resetSeconds(), 10)
}

// resetSeconds rounds Reset up, so a client that waits that long finds
// the new window begun.
func (d Decision) resetSeconds() int64 {
	return int64((d.Reset + time.Second - 1) / time.Second)
}
