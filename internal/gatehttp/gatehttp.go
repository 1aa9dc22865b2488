// Package gatehttp is the data plane's HTTP side, without Caddy: what a
// call is read from (the credential, the headers a policy may read), what
// an allowed call hands the upstream (the caller's identity, never the
// credential) and how a refused call is answered (the status of its class,
// the RFC 6750 challenge, the rate-limit fields, the JSON body). The Caddy
// handler runs it around gateway.Authorize.
package gatehttp

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// IdentityHeaderPrefix marks the headers tokengate sets for the upstream.
// Any client-sent header with this prefix is deleted first, so an upstream
// can trust them.
const IdentityHeaderPrefix = "X-Tokengate-"

// maxCredentialLen bounds how much of a credential header is looked at.
// Anything longer cannot be a token and is refused before any work.
const maxCredentialLen = 256

// Credential returns the token presented in header, or the reason there
// is none. It only checks the envelope; the token's own format is checked
// by the gate.
func Credential(r *http.Request, header string) (secret, problem string) {
	values := r.Header.Values(header)
	switch {
	case len(values) == 0:
		return "", reason.TokenMissing
	case len(values) > 1:
		// Two credentials: which one would an upstream or a log believe?
		return "", reason.TokenMalformed
	}
	v := values[0]
	if len(v) > maxCredentialLen+len("Bearer ") {
		return "", reason.TokenMalformed
	}
	if header != "Authorization" {
		if v == "" {
			return "", reason.TokenMalformed
		}
		return v, ""
	}
	scheme, credential, _ := strings.Cut(v, " ")
	if scheme == "" && credential == "" {
		return "", reason.TokenMalformed
	}
	if !strings.EqualFold(scheme, "Bearer") {
		// Another scheme (Basic, Digest...) presents no bearer token.
		return "", reason.TokenMissing
	}
	credential = strings.TrimSpace(credential)
	if credential == "" {
		return "", reason.TokenMalformed
	}
	return credential, ""
}

// CheckCredentialHeader refuses a header (canonical name) that cannot
// carry the credential: the cookie header, an identity header set for the
// upstream, or one of policyHeaders, those the policy may read.
func CheckCredentialHeader(header string, policyHeaders []string) error {
	if header == "Cookie" || strings.HasPrefix(header, IdentityHeaderPrefix) {
		return fmt.Errorf("tokengate: header %s cannot carry the credential", header)
	}
	// The secret would become policy input: in every decision cache key,
	// and in the log of any print() a policy author adds.
	if slices.Contains(policyHeaders, header) {
		return fmt.Errorf("tokengate: policy_headers cannot list %s, the header that carries the credential", header)
	}
	return nil
}

// PolicyHeaders returns the request headers named (canonical names) that
// the policy may read, keyed in lower case; nil when none is named.
func PolicyHeaders(r *http.Request, names []string) map[string]string {
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]string, len(names))
	for _, name := range names {
		if v := r.Header.Get(name); v != "" {
			m[strings.ToLower(name)] = v
		}
	}
	return m
}

// HandOn prepares an allowed call's request for the upstream: the
// credential in header (canonical) and any identity header the client
// made up are deleted, and the caller's identity is set.
func HandOn(r *http.Request, header string, res gateway.Result) {
	r.Header.Del(header)
	for name := range r.Header {
		if strings.HasPrefix(name, IdentityHeaderPrefix) {
			delete(r.Header, name)
		}
	}
	// What Header.Set does, with one allocation for the four values
	// instead of one each. The keys are canonical already. (A fresh
	// slice per call: a handler after this one may change a header's
	// values in place.)
	values := []string{res.Token.ID, res.Token.Owner, res.Handoff.Scopes, res.DecisionID}
	r.Header[IdentityHeaderPrefix+"Token-Id"] = values[0:1:1]
	r.Header[IdentityHeaderPrefix+"Owner"] = values[1:2:2]
	r.Header[IdentityHeaderPrefix+"Scopes"] = values[2:3:3]
	r.Header[IdentityHeaderPrefix+"Decision-Id"] = values[3:4:4]
}
