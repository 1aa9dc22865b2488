package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/tokengate/caddy-tokengate/internal/textcheck"
)

// Verify checks raw (a compact JWS) and returns who it names: the header's
// algorithm against the allow-list (never none), the signature against the
// issuer's keys, iss, aud, exp, nbf, iat (within max_age), then the
// principal and groups claims. Every failure is a *Refusal.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	if err := v.checkHeader(raw); err != nil {
		return Identity{}, err
	}
	// A token of another issuer would fail its signature check too, after
	// a useless refetch of our issuer's keys; naming the issuer is the
	// clearer refusal. The signature check below proves the iss.
	iss, err := unverifiedIssuer(raw)
	if err != nil {
		return Identity{}, err
	}
	if iss != v.issuer {
		return Identity{}, refuse(ReasonIssuer, "issued by %q, want %q", iss, v.issuer)
	}
	verifier, err := v.discovered(ctx, false)
	if err != nil {
		return Identity{}, err
	}
	tok, err := verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, classify(err)
	}
	claims := map[string]any{}
	if err := tok.Claims(&claims); err != nil {
		return Identity{}, refuse(ReasonMalformed, "claims: %v", err)
	}
	now := v.now()
	if tok.IssuedAt.IsZero() {
		return Identity{}, refuse(ReasonMalformed, "no iat claim")
	}
	if tok.IssuedAt.After(now.Add(clockLeeway)) {
		return Identity{}, refuse(ReasonNotYetValid, "issued in the future")
	}
	if v.maxAge > 0 && now.Sub(tok.IssuedAt) > v.maxAge {
		return Identity{}, refuse(ReasonTooOld, "issued %s ago, max_age is %s", now.Sub(tok.IssuedAt).Round(time.Second), v.maxAge)
	}
	if v.kind == PersonKind {
		if err := checkAuthorizedParty(claims, v.audience); err != nil {
			return Identity{}, err
		}
	}
	principal, err := v.principal(claims)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{
		Principal: principal,
		Kind:      v.kind,
		Issuer:    v.name,
		Claims:    claims,
		Expiry:    tok.Expiry,
	}
	if v.groupsClaim != "" {
		id.Groups = stringsOf(claims[v.groupsClaim])
	}
	if err := v.allowed(claims, id.Groups); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// checkAuthorizedParty applies OpenID Connect Core 3.1.3.7 (6): an ID
// token names in azp the client it was issued to, which must be ours
// when present, and must be present when aud names other clients too.
// Without this, a token another client (or a CI job choosing its own
// audience) obtained with ours among its audiences would sign in here.
func checkAuthorizedParty(claims map[string]any, clientID string) error {
	azp, present := claims["azp"]
	if present {
		if s, ok := azp.(string); !ok || s != clientID {
			return refuse(ReasonAuthorizedParty, "azp is not this gateway's client id")
		}
		return nil
	}
	if aud, ok := claims["aud"].([]any); ok && len(aud) > 1 {
		return refuse(ReasonAuthorizedParty, "aud names %d audiences and there is no azp naming this gateway's client id", len(aud))
	}
	return nil
}

// allowed refuses a person outside allow_domains and allow_groups, when
// either is set (see PersonConfig).
func (v *Verifier) allowed(claims map[string]any, groups []string) error {
	if len(v.allowDomains) == 0 && len(v.allowGroups) == 0 {
		return nil
	}
	if email, _ := claims["email"].(string); email != "" && verifiedEmail(claims["email_verified"]) {
		if at := strings.LastIndexByte(email, '@'); at >= 0 && slices.Contains(v.allowDomains, strings.ToLower(email[at+1:])) {
			return nil
		}
	}
	for _, g := range groups {
		if slices.Contains(v.allowGroups, g) {
			return nil
		}
	}
	return refuse(ReasonSigninNotAllowed, "neither a verified email in allow_domains nor a group in allow_groups")
}

// checkHeader refuses, before any key is fetched, what is not a signed JWT
// or is signed with an algorithm outside the allow-list. go-jose would
// refuse these too, but with one message for both; this keeps the reasons
// apart and never lets "none" near a verifier.
func (v *Verifier) checkHeader(raw string) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return refuse(ReasonMalformed, "not a compact JWS (%d parts)", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return refuse(ReasonMalformed, "header is not base64url")
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return refuse(ReasonMalformed, "header is not JSON")
	}
	if strings.EqualFold(h.Alg, "none") || !slices.Contains(v.algorithms, h.Alg) {
		return refuse(ReasonAlgorithm, "algorithm %q not allowed", h.Alg)
	}
	if parts[2] == "" {
		return refuse(ReasonSignature, "no signature")
	}
	return nil
}

// classify maps go-oidc's errors to reasons. go-oidc types only the expiry
// error; the others are told apart by their messages, which the tests of
// this package pin for the go-oidc version in go.mod.
func classify(err error) *Refusal {
	var expired *oidc.TokenExpiredError
	if errors.As(err, &expired) {
		return refuse(ReasonExpired, "expired at %s", expired.Expiry.UTC().Format(time.RFC3339))
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "failed to verify signature: fetching keys"):
		return refuse(ReasonIssuerUnavailable, "%s", msg)
	case strings.Contains(msg, "failed to verify signature"):
		return refuse(ReasonSignature, "signature does not verify with the issuer's keys")
	case strings.Contains(msg, "issued by a different provider"):
		return refuse(ReasonIssuer, "%s", strings.TrimPrefix(msg, "oidc: "))
	case strings.Contains(msg, "expected audience"):
		return refuse(ReasonAudience, "%s", strings.TrimPrefix(msg, "oidc: "))
	case strings.Contains(msg, "before the nbf"):
		return refuse(ReasonNotYetValid, "not valid before its nbf")
	case strings.Contains(msg, "unexpected signature algorithm"):
		return refuse(ReasonAlgorithm, "%s", msg)
	}
	return refuse(ReasonMalformed, "%s", strings.TrimPrefix(msg, "oidc: "))
}

// principal reads the principal claim. An email is only an identity when
// the provider says it verified it: anyone can type an address into an
// account at many providers.
func (v *Verifier) principal(claims map[string]any) (string, error) {
	p, _ := claims[v.principalClaim].(string)
	if p == "" {
		return "", refuse(ReasonPrincipalMissing, "claim %q missing or not a string", v.principalClaim)
	}
	if v.principalClaim == "email" && !verifiedEmail(claims["email_verified"]) {
		return "", refuse(ReasonEmailNotVerified, "email_verified is not true")
	}
	if err := textcheck.CheckName(p); err != nil {
		return "", refuse(ReasonPrincipalInvalid, "claim %q %v", v.principalClaim, err)
	}
	if prefix := reservedPrefix(p, v.kind); prefix != "" {
		return "", refuse(ReasonPrincipalInvalid, "claim %q starts with %q, which tokengate reserves", v.principalClaim, prefix)
	}
	return p, nil
}

// reservedPrefix returns the reserved prefix p starts with (in any case),
// or "". tokengate writes these names itself, and a principal spelled
// like one would read as something it is not in decided_by, held_by and
// the audit lines: "policy:" names an automatic approval, "workload:" a
// workload that exchanged its token (a person's principal only; a
// workload's gets that prefix from tokengate), "local-operator" the
// operator on Caddy's admin endpoint.
func reservedPrefix(p, kind string) string {
	reserved := []string{"policy:", "local-operator"}
	if kind == PersonKind {
		reserved = append(reserved, "workload:")
	}
	for _, r := range reserved {
		if len(p) >= len(r) && strings.EqualFold(p[:len(r)], r) {
			return r
		}
	}
	return ""
}

// verifiedEmail takes true, or "true" as some providers (AWS Cognito) send it.
func verifiedEmail(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return b == "true"
	}
	return false
}

// stringsOf reads a claim holding one string or an array of strings;
// anything else gives no groups.
func stringsOf(v any) []string {
	switch g := v.(type) {
	case string:
		if g == "" {
			return nil
		}
		return []string{g}
	case []any:
		var out []string
		for _, e := range g {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Workloads verifies tokens of several workload issuers, choosing the
// verifier by the token's iss.
type Workloads struct {
	byIssuer map[string]*Verifier
}

// NewWorkloads checks cs and returns their verifiers. Names and issuers
// must be unique. Like NewPerson, it does not contact the issuers.
func NewWorkloads(ctx context.Context, cs []WorkloadConfig, opts ...Option) (*Workloads, error) {
	w := &Workloads{byIssuer: map[string]*Verifier{}}
	names := map[string]bool{}
	for _, c := range cs {
		if c.Name == "" {
			return nil, fmt.Errorf("workload %s: name is required", c.Issuer)
		}
		if names[c.Name] {
			return nil, fmt.Errorf("workload %s: defined twice", c.Name)
		}
		names[c.Name] = true
		if _, dup := w.byIssuer[c.Issuer]; dup {
			return nil, fmt.Errorf("workload %s: issuer %s already used by another workload", c.Name, c.Issuer)
		}
		v, err := newVerifier(ctx, WorkloadKind, c.Name, c.Issuer, c.Audience, c.PrincipalClaim, "", 0, c.Algorithms, opts)
		if err != nil {
			return nil, fmt.Errorf("workload %s: %v", c.Name, err)
		}
		w.byIssuer[c.Issuer] = v
	}
	return w, nil
}

// Verifiers lists the workload verifiers (Caddy discovers each at provision).
func (w *Workloads) Verifiers() []*Verifier {
	out := make([]*Verifier, 0, len(w.byIssuer))
	for _, v := range w.byIssuer {
		out = append(out, v)
	}
	return out
}

// Verify picks the verifier of the token's (unverified) iss and verifies
// the token with it; the signature check then proves the iss. An iss no
// workload names is refused with id_token_issuer.
func (w *Workloads) Verify(ctx context.Context, raw string) (Identity, error) {
	iss, err := unverifiedIssuer(raw)
	if err != nil {
		return Identity{}, err
	}
	v, ok := w.byIssuer[iss]
	if !ok {
		return Identity{}, refuse(ReasonIssuer, "no workload issuer %q configured", iss)
	}
	return v.Verify(ctx, raw)
}

func unverifiedIssuer(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", refuse(ReasonMalformed, "not a compact JWS (%d parts)", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", refuse(ReasonMalformed, "payload is not base64url")
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", refuse(ReasonMalformed, "payload is not JSON")
	}
	return c.Iss, nil
}
