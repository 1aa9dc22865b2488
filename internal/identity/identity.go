// Package identity verifies OpenID Connect tokens: ID tokens of people
// signing in at the company's identity provider (Verifier, from NewPerson)
// and tokens of CI workloads from configured issuers (Workloads). It turns
// a verified token into an Identity, or refuses it with a Refusal whose
// Reason is a stable code for the 401 body and the audit line.
//
// Discovery comes from the issuer over HTTP (go-oidc); keys from its
// jwks_uri, cached, fetched again once the cached set is stale (its
// Cache-Control max-age, or five minutes) so a key the provider withdrew
// stops verifying, and sooner when a token names a key the cache lacks
// (keys.go), so a key the provider rotated in is picked up on first use,
// while forged tokens cannot make the gateway hammer the provider.
package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Kinds of Identity.
const (
	PersonKind   = "person"
	WorkloadKind = "workload"
)

// Refusal reasons.
const (
	ReasonMalformed         = reason.IDTokenMalformed
	ReasonAlgorithm         = reason.IDTokenAlgorithm
	ReasonSignature         = reason.IDTokenSignature
	ReasonIssuer            = reason.IDTokenIssuer
	ReasonAudience          = reason.IDTokenAudience
	ReasonExpired           = reason.IDTokenExpired
	ReasonNotYetValid       = reason.IDTokenNotYetValid
	ReasonTooOld            = reason.IDTokenTooOld
	ReasonPrincipalMissing  = reason.PrincipalClaimMissing
	ReasonEmailNotVerified  = reason.EmailNotVerified
	ReasonIssuerUnavailable = reason.IssuerUnavailable
	ReasonAuthorizedParty   = reason.IDTokenAZP
	ReasonPrincipalInvalid  = reason.PrincipalInvalid
	ReasonSigninNotAllowed  = reason.SigninNotAllowed
)

// Reasons lists every Refusal reason, as package reason declares them.
var Reasons = func() []string {
	out := make([]string, len(reason.Identity))
	for i, c := range reason.Identity {
		out[i] = c.Name
	}
	return out
}()

// Identity is a caller whose token was verified.
type Identity struct {
	Principal string         // value of the configured principal claim (default "sub"; "email" only when email_verified)
	Kind      string         // PersonKind (the oidc issuer) or WorkloadKind (a configured workload issuer)
	Issuer    string         // person: the issuer URL; workload: the configured workload name, e.g. "github"
	Groups    []string       // from groups_claim (people)
	Claims    map[string]any // all verified claims
	Expiry    time.Time
}

// Refusal is why a token was not accepted: the one refusal type, with
// Code one of Reasons and a Detail for logs that never holds the token.
// Unavailable() is the issuer's fault (discovery or keys could not be
// fetched), not the token's; Forbidden() a good token naming someone who
// may not sign in here (403, not 401: another token of theirs would not
// help).
type Refusal = reason.Refusal

func refuse(code, format string, args ...any) *Refusal {
	return reason.Newf(code, format, args...)
}

// PersonConfig is the oidc issuer people sign in with.
type PersonConfig struct {
	// Issuer is the provider's issuer URL, as its discovery document and
	// the tokens' iss claim spell it.
	Issuer string `json:"issuer"`
	// Audience is the client id ID tokens are issued to.
	Audience string `json:"audience"`
	// PrincipalClaim names the claim that identifies the person. Default
	// "sub"; "email" is taken only when email_verified is true.
	PrincipalClaim string `json:"principal_claim,omitempty"`
	// GroupsClaim names the claim with the person's groups (a string or an
	// array of strings). Default "groups".
	GroupsClaim string `json:"groups_claim,omitempty"`
	// MaxAge bounds how long ago the token may have been issued (iat).
	// Default 12h.
	MaxAge Duration `json:"max_age,omitempty"`
	// Algorithms allowed for the signature. Default DefaultAlgorithms;
	// "none" and HMAC algorithms are never allowed.
	Algorithms []string `json:"algorithms,omitempty"`
	// AllowDomains and AllowGroups name who may sign in. With neither,
	// anyone the issuer signs in for this audience may. With either, a
	// person may sign in when the domain of their email is listed (the
	// email claim's part after its last "@", compared exactly and without
	// regard to case, so sub.example.com is not example.com; taken only
	// when email_verified is true), or when one of their groups_claim
	// groups is listed (compared exactly). Others get signin_not_allowed.
	AllowDomains []string `json:"allow_domains,omitempty"`
	AllowGroups  []string `json:"allow_groups,omitempty"`
}

// WorkloadConfig is an issuer of CI or cluster workload tokens.
type WorkloadConfig struct {
	// Name is what Identity.Issuer says for these workloads, e.g. github.
	Name           string   `json:"name"`
	Issuer         string   `json:"issuer"`
	Audience       string   `json:"audience"`
	PrincipalClaim string   `json:"principal_claim,omitempty"` // default "sub"
	Algorithms     []string `json:"algorithms,omitempty"`
}

// DefaultAlgorithms are the signature algorithms allowed when a config
// names none: the asymmetric ones of RFC 7518 and EdDSA.
var DefaultAlgorithms = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA,
}

// DefaultMaxAge bounds iat when a PersonConfig sets no max_age.
const DefaultMaxAge = 12 * time.Hour

// clockLeeway tolerates clocks that disagree a little, as go-oidc does for
// nbf: iat up to this far in the future is accepted.
const clockLeeway = 5 * time.Minute

// rediscoverAfter spaces attempts to reach an issuer whose discovery
// failed: calls in between are refused at once with issuer_unavailable
// instead of each waiting on a provider that is down.
const rediscoverAfter = 5 * time.Second

// Option changes how a Verifier works; tests use it for a clock.
type Option func(*settings)

type settings struct {
	now    func() time.Time
	client *http.Client
}

// WithClock makes the verifier read time from now (expiry, nbf, iat).
func WithClock(now func() time.Time) Option { return func(s *settings) { s.now = now } }

// Verifier verifies the tokens of one issuer.
//
// It does not need the issuer at construction: discovery happens on
// Discover or the first Verify, and after a failure it is retried on a
// later call (no more often than every few seconds). A provider that is
// down while Caddy starts therefore does not keep the gateway from
// starting, and sign-in works once the provider is back; until then every
// token is refused with issuer_unavailable (fail closed).
type Verifier struct {
	kind, name     string // Identity.Kind and Identity.Issuer
	issuer         string
	audience       string
	principalClaim string
	groupsClaim    string
	maxAge         time.Duration
	algorithms     []string
	allowDomains   []string // lower case; with allowGroups, who may sign in (none: anyone)
	allowGroups    []string
	now            func() time.Time
	client         *http.Client
	keyCtx         context.Context // lives as long as the verifier: key refetches use it

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	keys     *keySet // set with verifier
	lastTry  time.Time
	lastErr  error
}

// NewPerson checks c and returns a verifier for people's ID tokens. ctx
// must live as long as the verifier (Caddy's context): key refetches use
// it. It returns an error only for a bad config; see Verifier for when the
// issuer is contacted.
func NewPerson(ctx context.Context, c PersonConfig, opts ...Option) (*Verifier, error) {
	maxAge := time.Duration(c.MaxAge)
	if maxAge == 0 {
		maxAge = DefaultMaxAge
	}
	if maxAge < 0 {
		return nil, fmt.Errorf("oidc: max_age must be positive")
	}
	groups := c.GroupsClaim
	if groups == "" {
		groups = "groups"
	}
	v, err := newVerifier(ctx, PersonKind, c.Issuer, c.Issuer, c.Audience, c.PrincipalClaim, groups, maxAge, c.Algorithms, opts)
	if err != nil {
		return nil, err
	}
	for _, d := range c.AllowDomains {
		d = strings.ToLower(d)
		if d == "" || strings.ContainsAny(d, "@ ") || strings.HasPrefix(d, ".") || strings.HasPrefix(d, "*") {
			return nil, fmt.Errorf("issuer %s: allow_domains %q is not a domain (write example.com: exactly that domain, no wildcard, no @)", c.Issuer, d)
		}
		v.allowDomains = append(v.allowDomains, d)
	}
	for _, g := range c.AllowGroups {
		if g == "" {
			return nil, fmt.Errorf("issuer %s: allow_groups has an empty group", c.Issuer)
		}
	}
	v.allowGroups = slices.Clone(c.AllowGroups)
	return v, nil
}

func newVerifier(ctx context.Context, kind, name, issuer, audience, principal, groups string, maxAge time.Duration, algs []string, opts []Option) (*Verifier, error) {
	if issuer == "" {
		return nil, fmt.Errorf("issuer is required")
	}
	if err := checkIssuerURL(issuer); err != nil {
		return nil, err
	}
	if audience == "" {
		return nil, fmt.Errorf("issuer %s: audience is required", issuer)
	}
	if principal == "" {
		principal = "sub"
	}
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	for _, a := range algs {
		if !slices.Contains(DefaultAlgorithms, a) {
			return nil, fmt.Errorf("issuer %s: algorithm %q not allowed (allowed: %s)", issuer, a, strings.Join(DefaultAlgorithms, ", "))
		}
	}
	s := settings{now: time.Now, client: &http.Client{Timeout: 10 * time.Second}}
	for _, o := range opts {
		o(&s)
	}
	return &Verifier{
		kind: kind, name: name, issuer: issuer, audience: audience,
		principalClaim: principal, groupsClaim: groups, maxAge: maxAge,
		algorithms: slices.Clone(algs), now: s.now, client: s.client,
		keyCtx: oidc.ClientContext(ctx, s.client),
	}, nil
}

// checkIssuerURL wants https: the keys that decide who may manage tokens
// are fetched from the issuer, and over plain http anyone on the path
// could hand over their own. Plain http is accepted for loopback hosts
// only (a provider on the same machine, tests).
func checkIssuerURL(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("issuer %q: not an issuer URL (https://host[/path])", issuer)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("issuer %q: must be https (plain http only on a loopback address)", issuer)
	}
	return fmt.Errorf("issuer %q: not an http(s) URL", issuer)
}

// Issuer is the issuer URL the verifier trusts.
func (v *Verifier) Issuer() string { return v.issuer }

// Discover fetches the issuer's discovery document unless that was done
// already; Caddy calls it at provision to warn early about an issuer it
// cannot reach.
func (v *Verifier) Discover(ctx context.Context) error {
	_, err := v.discovered(ctx, true)
	return err
}

// Up reports whether the issuer answered the last time it was asked:
// its discovery document was read, and the last fetch of its keys, if
// any, succeeded. It asks nothing itself, so it is as fresh as the last
// sign-in or Discover.
func (v *Verifier) Up() bool {
	v.mu.Lock()
	keys := v.keys
	v.mu.Unlock()
	return keys != nil && keys.reachable()
}

func (v *Verifier) discovered(ctx context.Context, force bool) (*oidc.IDTokenVerifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.verifier != nil {
		return v.verifier, nil
	}
	if !force && v.lastErr != nil && v.now().Sub(v.lastTry) < rediscoverAfter {
		return nil, v.lastErr
	}
	v.lastTry = v.now()
	// Discovery with the caller's deadline, keys with the verifier's own
	// context: the key set outlives this call.
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, v.client), v.issuer)
	if err != nil {
		v.lastErr = refuse(ReasonIssuerUnavailable, "discovery of %s: %v", v.issuer, err)
		return nil, v.lastErr
	}
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKS == "" {
		v.lastErr = refuse(ReasonIssuerUnavailable, "discovery of %s: no jwks_uri", v.issuer)
		return nil, v.lastErr
	}
	keys := newKeySet(v.keyCtx, meta.JWKS, v.algorithms, v.client, v.now)
	v.keys = keys
	v.verifier = oidc.NewVerifier(v.issuer, keys, &oidc.Config{
		ClientID:             v.audience,
		SupportedSigningAlgs: v.algorithms,
		Now:                  v.now,
	})
	v.lastErr = nil
	return v.verifier, nil
}

// Duration is a time.Duration in JSON as Caddy writes one: a string such
// as "12h" or "1d" (days), or an integer of nanoseconds.
type Duration time.Duration

// UnmarshalJSON reads "12h", "1d12h" or 43200000000000.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err == nil {
		*d = Duration(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like 12h or a number of nanoseconds")
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the Go form, e.g. "12h0m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// ParseDuration is time.ParseDuration that also takes whole days first:
// "1d", "2d12h".
func ParseDuration(s string) (time.Duration, error) {
	days := time.Duration(0)
	if i := strings.IndexByte(s, 'd'); i > 0 {
		var n int64
		if _, err := fmt.Sscanf(s[:i], "%d", &n); err != nil || fmt.Sprint(n) != s[:i] {
			return 0, fmt.Errorf("duration %q: bad day count", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return days + v, nil
}
