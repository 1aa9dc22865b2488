// Package api holds the JSON shapes of tokengate's management API and a
// typed client for it. The same routes are served by the management
// handler (tokengate_admin, under /v1) and by Caddy's admin endpoint for
// the local operator (under /tokengate); the server and the CLI both use
// these types, so the two sides cannot drift apart.
package api

import (
	"encoding/json"
	"time"
)

// TokenView is a token as the API shows it: everything but the hash.
type TokenView struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	Owner     string    `json:"owner"`
	Purpose   string    `json:"purpose"`
	Scopes    []string  `json:"scopes"`
	Services  []string  `json:"services"`
	CIDRs     []string  `json:"cidrs"`
	NotBefore time.Time `json:"not_before"`
	ExpiresAt time.Time `json:"expires_at"`
	MaxUses   int64     `json:"max_uses"`
	Uses      int64     `json:"uses"`
	// RateLimit is the token's own rate limit as requests/window
	// ("100/1m"); empty when it has none (the gateway policy may still
	// set one).
	RateLimit    string     `json:"rate_limit,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	CreatedBy    string     `json:"created_by"`
	HeldBy       string     `json:"held_by,omitempty"` // who holds the secret (claimed or received it); empty for tokens stored before holders were recorded
	ApprovedBy   string     `json:"approved_by,omitempty"`
	RotatedFrom  string     `json:"rotated_from,omitempty"`
	RotatedTo    string     `json:"rotated_to,omitempty"`
	GraceUntil   *time.Time `json:"grace_until,omitempty"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	RevokedBy    string     `json:"revoked_by,omitempty"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	// ExposedAt, ExposureSource and ExposureURL say when the secret was
	// reported found in the wild, by whom and where (state exposed).
	ExposedAt      *time.Time `json:"exposed_at,omitempty"`
	ExposureSource string     `json:"exposure_source,omitempty"`
	ExposureURL    string     `json:"exposure_url,omitempty"`
	// LastUsedAt is written in batches about once a second; a token in
	// steady use from one address may show a time up to a minute old.
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	LastUsedIP string     `json:"last_used_ip,omitempty"`
	UsedScopes []string   `json:"used_scopes"`
}

// IssuedToken is the one response that carries a secret.
type IssuedToken struct {
	Secret string    `json:"secret"`
	Token  TokenView `json:"token"`
}

// TokenSpec is what someone asks a token for: the body of issue and of a
// token request. TTL is a Go duration such as "24h".
type TokenSpec struct {
	Owner     string     `json:"owner"`
	Purpose   string     `json:"purpose"`
	Scopes    []string   `json:"scopes"`
	Services  []string   `json:"services"`
	CIDRs     []string   `json:"cidrs,omitempty"`
	TTL       string     `json:"ttl"`
	NotBefore *time.Time `json:"not_before,omitempty"`
	MaxUses   int64      `json:"max_uses,omitempty"`
	// RateLimit caps the token's calls as requests/window, the window one
	// of 1s, 1m, 1h, 24h ("100/1m"); empty for none of its own.
	RateLimit string `json:"rate_limit,omitempty"`
	// Ticket is the change ticket or justification the approver reads,
	// such as "CHG-1234"; it is kept on the request.
	Ticket string `json:"ticket,omitempty"`
}

// ProblemType is the media type of every refusal of the management API.
const ProblemType = "application/problem+json"

// ErrorBody is the body of every refusal of the management API: an RFC
// 9457 problem details object. Type is "about:blank", so Title is the
// status text; Reason is the machine-readable code (an extension member)
// and Detail, for a bad request, what was wrong.
type ErrorBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Reason string `json:"reason"`
}

// TokenExchangeResult is the answer to POST /v1/token, OAuth 2.0 Token
// Exchange (RFC 8693 section 2.2.1): the tokengate secret for the
// workload, once. TokenID is tokengate's own addition, the token's public
// id, for the inventory and the audit trail.
type TokenExchangeResult struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope"`
	TokenID         string `json:"token_id"`
}

// OAuthError is a refusal of POST /v1/token. That endpoint answers as
// OAuth clients expect (RFC 6749 section 5.2), not with problem details:
// Error is the OAuth error code, Reason tokengate's reason code.
type OAuthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
	Reason      string `json:"reason"`
}

// SignInConfig is what the CLI needs to sign a person in with the
// gateway's OpenID provider: its issuer URL, the client id its ID tokens
// are issued to (the gateway's oidc audience) and the scopes to ask for.
// GET /v1/auth/oidc serves it without a credential: it is what a caller
// needs before it has one.
type SignInConfig struct {
	Issuer   string   `json:"issuer"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
}

// BootstrapRequest names the first requester and approver.
type BootstrapRequest struct {
	Requester string `json:"requester"`
	Approver  string `json:"approver"`
	TTL       string `json:"ttl,omitempty"`
}

// BreakGlassStart begins the recovery of lost bootstrap secrets: new
// management tokens for a requester and an approver (living max_ttl), and
// why.
type BreakGlassStart struct {
	Requester string `json:"requester"`
	Approver  string `json:"approver"`
	Reason    string `json:"reason"`
}

// BreakGlassPending is a started recovery. Its confirmation code is not
// here: it is in CodeFile, on the node, readable by Caddy's user only.
type BreakGlassPending struct {
	ID        string    `json:"id"`
	Requester string    `json:"requester"`
	Approver  string    `json:"approver"`
	NotBefore time.Time `json:"not_before"`
	Expires   time.Time `json:"expires"`
	CodeFile  string    `json:"code_file"`
}

// BreakGlassConfirm completes a recovery with the code from its file.
type BreakGlassConfirm struct {
	Code string `json:"code"`
}

// BootstrapResult carries the two management secrets, shown once.
type BootstrapResult struct {
	Tokens []IssuedToken `json:"tokens"`
}

// ReasonBody is the body of revoke, approve and deny.
type ReasonBody struct {
	Reason string `json:"reason"`
}

// RotateBody is the body of rotate; Grace is a Go duration, empty for
// the default.
type RotateBody struct {
	Grace string `json:"grace"`
}

// RequestView is a token request as the API shows it.
type RequestView struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	Owner       string     `json:"owner"`
	Purpose     string     `json:"purpose"`
	Scopes      []string   `json:"scopes"`
	Services    []string   `json:"services"`
	CIDRs       []string   `json:"cidrs"`
	TTL         string     `json:"ttl"`
	MaxUses     int64      `json:"max_uses"`
	RateLimit   string     `json:"rate_limit,omitempty"` // as requests/window, "100/1m"
	RequestedBy string     `json:"requested_by"`
	HeldBy      string     `json:"held_by"` // who will hold the secret once claimed: the requester, the only one who may claim it
	Ticket      string     `json:"ticket,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	DecidedBy   string     `json:"decided_by,omitempty"`
	DecidedAt   *time.Time `json:"decided_at,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	ClaimBy     *time.Time `json:"claim_by,omitempty"`
	TokenID     string     `json:"token_id,omitempty"`
}

// RequestOutcome answers a request or a claim; Secret is set only when the
// caller is the one who may hold it.
type RequestOutcome struct {
	Request RequestView `json:"request"`
	Secret  string      `json:"secret,omitempty"`
	Token   *TokenView  `json:"token,omitempty"`
}

// CheckRequest is the body of a dry-run decision.
type CheckRequest struct {
	TokenID string `json:"token_id"`
	Service string `json:"service"`
	Method  string `json:"method"`
	Host    string `json:"host"`
	Path    string `json:"path"`
	IP      string `json:"ip"`
	// WithInput asks for the gateway policy's input document, built from
	// the stored token exactly as the gateway builds it, so that another
	// policy can be tried against it (check --policy).
	WithInput bool `json:"with_input,omitempty"`
}

// CheckResult is what the gateway policy would decide.
type CheckResult struct {
	Allow     bool     `json:"allow"`
	Reasons   []string `json:"reasons"`
	Scope     string   `json:"scope,omitempty"`
	PolicyRev string   `json:"policy_rev"`
	// Input is the policy input, when asked for and the token is live.
	// It is absent when the token is dead (revoked, expired, used up):
	// liveness is decided before any policy runs, so no policy could
	// change that answer.
	Input json.RawMessage `json:"input,omitempty"`
}

// Report is the token hygiene report over live tokens.
type Report struct {
	GeneratedAt      time.Time    `json:"generated_at"`
	LiveTokens       int          `json:"live_tokens"`
	ExpiringSoon     []ReportItem `json:"expiring_soon"`
	NeverUsed        []ReportItem `json:"never_used"`
	Unused           []ReportItem `json:"unused"`
	WriteWithoutCIDR []ReportItem `json:"write_without_cidr"`
	LongLived        []ReportItem `json:"long_lived"`
	UnusedScopes     []ReportItem `json:"unused_scopes"`
	// Exposed are tokens whose secrets were found in the wild in the last
	// 30 days: revoked, with a secret to replace wherever it was used.
	Exposed []ReportItem `json:"exposed"`
}

// ReportItem names one token in a finding.
type ReportItem struct {
	TokenID string   `json:"token_id"`
	Owner   string   `json:"owner"`
	Purpose string   `json:"purpose"`
	Detail  string   `json:"detail,omitempty"`
	Scopes  []string `json:"scopes,omitempty"`
}

// LeakReport is the body of POST /v1/leaks in its plain shape: secrets
// found in the wild, who found them and where. The endpoint also takes a
// gitleaks JSON report as it is. With DryRun, nothing is revoked: the
// answer only says which tokens the secrets open and in what state.
type LeakReport struct {
	Source  string   `json:"source,omitempty"`
	URL     string   `json:"url,omitempty"`
	Secrets []string `json:"secrets"`
	DryRun  bool     `json:"dry_run,omitempty"`
}

// LeakResult answers POST /v1/leaks: one outcome per secret, in order,
// and how many of each.
type LeakResult struct {
	Results []LeakOutcome  `json:"results"`
	Counts  map[string]int `json:"counts"`
}

// LeakOutcome is what became of one reported secret: exposed (revoked
// now), already_exposed, inactive (revoked, expired, rotated or used up
// before), unknown (not a token of this gateway), malformed (fails the
// checksum), or, in a dry run, live. Label is GitHub's verdict on it:
// true_positive for a token of ours that was live when first reported.
// TokenID and State are present when the secret is ours.
type LeakOutcome struct {
	Outcome string `json:"outcome"`
	Label   string `json:"label"`
	TokenID string `json:"token_id,omitempty"`
	State   string `json:"state,omitempty"`
}
