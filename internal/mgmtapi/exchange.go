package mgmtapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/identity"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/textcheck"
)

// The token exchange takes no credential, so nothing but its client's
// address limits how often it is tried: each attempt verifies a JWT,
// perhaps fetches keys, and writes an audit line. The brake allows
// DefaultExchangeAttempts per address and DefaultExchangeWindow unless
// the app's exchange_limit says otherwise.
const (
	DefaultExchangeAttempts = 30
	DefaultExchangeWindow   = time.Minute
)

// POST /v1/token is OAuth 2.0 Token Exchange (RFC 8693): a CI job or a
// service account trades the OIDC token its platform gave it (GitHub
// Actions, GitLab CI, Kubernetes) for a short-lived tokengate token for
// one service. The subject token is the credential, so the endpoint takes
// no bearer token, and nothing is stored but the token record: the
// workload owns and holds it, and the admin policy (action "exchange")
// decides what it may have.
//
// The request is a form (application/x-www-form-urlencoded), as RFC 8693
// section 2.1 has it: grant_type, subject_token, subject_token_type (jwt
// or id_token), optional requested_token_type (only access_token), scope
// (space-separated tokengate scopes) and audience: the tokengate service,
// a logical name, which is what RFC 8693 calls the audience (resource is
// for the URI of a resource server, and is refused with invalid_target).
// The lifetime is the server's: at most 15 minutes, shorter where the
// policy says so, and reported in expires_in.
//
// The exchange takes the one way in of every management call: the
// Workload Authenticator checks the request and verifies the subject
// token, which yields the actor (kind workload), and the route acts for it
// through manage.Service, which asks the admin policy and writes the
// token.exchanged line of every attempt, refused ones included.
//
// Answers follow OAuth, not the problem details of the rest of the
// management API, because OAuth clients parse them: 200 with access_token
// (the secret, once), issued_token_type, token_type Bearer, expires_in and
// scope; refusals are 400 with error (RFC 6749 section 5.2, RFC 8693
// section 2.2.2), error_description and our reason code. A subject token
// that cannot be verified is invalid_request, as RFC 8693 section 2.2.2
// requires ("if ... the subject_token ... [is] invalid for any reason");
// the reason code tells which check failed.

// Parameter values of RFC 8693.
const (
	grantTokenExchange  = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeJWT        = "urn:ietf:params:oauth:token-type:jwt"
	tokenTypeIDToken    = "urn:ietf:params:oauth:token-type:id_token"
	tokenTypeAccess     = "urn:ietf:params:oauth:token-type:access_token"
	ExchangePath        = "/v1/token"
	formMediaType       = "application/x-www-form-urlencoded"
	maxExchangeBodySize = maxBodyBytes
)

// exchangeAsk is a well-formed exchange request.
type exchangeAsk struct {
	subjectToken string
	scopes       []string
	service      string
}

// askOf reads the parameters of a form parseExchange accepted.
func askOf(form url.Values) exchangeAsk {
	return exchangeAsk{subjectToken: form.Get("subject_token"), scopes: strings.Split(form.Get("scope"), " "), service: form.Get("audience")}
}

// oauthError is a refusal as an OAuth client reads it.
type oauthError struct {
	status int
	code   string // the OAuth error code
	reason string // tokengate's reason code
	desc   string
}

func (e *oauthError) Error() string { return e.reason + ": " + e.desc }

// refusal is e as the audit trail records it.
func (e *oauthError) refusal() *reason.Refusal {
	return reason.New(e.reason, e.desc)
}

func badExchange(code, reason, desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: code, reason: reason, desc: desc}
}

// single names the parameters that may be given once at most (RFC 6749
// section 3.2); audience and resource may repeat in RFC 8693, and are
// refused with invalid_target when they do, since a token serves one
// service.
var single = []string{"grant_type", "subject_token", "subject_token_type", "requested_token_type", "scope"}

// parseExchange reads and checks an exchange request, and keeps the form
// in r.PostForm, as Request.ParseForm does, for the route. Unknown
// parameters are ignored, as RFC 6749 section 3.2 requires. No answer
// quotes the subject token or any other value sent.
func parseExchange(r *http.Request) (exchangeAsk, *oauthError) {
	var ask exchangeAsk
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != formMediaType {
		return ask, badExchange("invalid_request", reason.ContentTypeInvalid, "send the parameters as "+formMediaType)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return ask, badExchange("invalid_request", reason.ContentTypeInvalid, "the form must be UTF-8")
	}
	// A token in the URL would land in access logs and proxies' logs.
	if r.URL.RawQuery != "" {
		return ask, badExchange("invalid_request", reason.QueryNotAllowed, "send the parameters in the body, never in the URL")
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxExchangeBodySize))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return ask, badExchange("invalid_request", reason.BodyTooLarge, "the form exceeds 64 KiB")
	}
	if err != nil {
		return ask, badExchange("invalid_request", reason.BodyInvalid, "the form could not be read")
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return ask, badExchange("invalid_request", reason.BodyInvalid, "the body is not a URL-encoded form")
	}
	for name, values := range form {
		for _, v := range values {
			if !utf8.ValidString(v) {
				return ask, badExchange("invalid_request", reason.BodyInvalid, "parameter "+safeName(name)+" is not UTF-8")
			}
		}
	}
	for _, name := range single {
		if len(form[name]) > 1 {
			return ask, badExchange("invalid_request", reason.ParameterRepeated, name+" is given more than once")
		}
	}
	switch gt := form.Get("grant_type"); gt {
	case "":
		return ask, badExchange("invalid_request", reason.GrantTypeMissing, "grant_type is required: "+grantTokenExchange)
	case grantTokenExchange:
	default:
		return ask, badExchange("unsupported_grant_type", reason.GrantTypeUnsupported, "the only grant_type served here is "+grantTokenExchange)
	}
	if form.Has("actor_token") || form.Has("actor_token_type") {
		return ask, badExchange("invalid_request", reason.ActorTokenUnsupported, "delegation (actor_token) is not supported: a workload exchanges its own token")
	}
	if ask.subjectToken = form.Get("subject_token"); ask.subjectToken == "" {
		return ask, badExchange("invalid_request", reason.SubjectTokenMissing, "subject_token is required: the workload's OIDC token")
	}
	switch form.Get("subject_token_type") {
	case tokenTypeJWT, tokenTypeIDToken:
	case "":
		return ask, badExchange("invalid_request", reason.SubjectTokenTypeMissing, "subject_token_type is required: "+tokenTypeJWT+" or "+tokenTypeIDToken)
	default:
		return ask, badExchange("invalid_request", reason.SubjectTokenTypeUnsupported, "subject_token_type must be "+tokenTypeJWT+" or "+tokenTypeIDToken)
	}
	if rt := form.Get("requested_token_type"); rt != "" && rt != tokenTypeAccess {
		return ask, badExchange("invalid_request", reason.RequestedTokenTypeUnsupported, "the only requested_token_type issued is "+tokenTypeAccess)
	}
	if form.Has("resource") {
		return ask, badExchange("invalid_target", reason.ResourceUnsupported, "name the tokengate service in audience; resource is not used")
	}
	switch audiences := form["audience"]; {
	case len(audiences) == 0 || audiences[0] == "":
		return ask, badExchange("invalid_request", reason.AudienceMissing, "audience is required: the tokengate service the token is for")
	case len(audiences) > 1:
		return ask, badExchange("invalid_target", reason.AudienceMultiple, "a token serves exactly one service: give one audience")
	default:
		ask.service = audiences[0]
	}
	scope := form.Get("scope")
	if scope == "" {
		return ask, badExchange("invalid_request", reason.ScopeMissing, "scope is required: space-separated tokengate scopes such as billing:read")
	}
	// RFC 6749 section 3.3: scope-tokens separated by single spaces.
	ask.scopes = strings.Split(scope, " ")
	for _, s := range ask.scopes {
		if s == "" {
			return ask, badExchange("invalid_scope", reason.ScopeInvalid, "scopes are separated by single spaces")
		}
	}
	r.PostForm = form
	return ask, nil
}

// safeName is a parameter name fit to echo: short, and no secret.
func safeName(name string) string {
	if len(name) > 40 || textcheck.Check(name) != nil {
		return "(unnamed)"
	}
	return name
}

// Workload authenticates a token exchange (POST /v1/token): the
// workload's subject token is its credential. Every attempt counts against
// the client's address first; then the request must be a well-formed
// exchange and its subject token verify with a configured workload issuer.
// The actor is the verified workload: its principal, issuer and claims for
// the admin policy, and the subject token it presented (hash and expiry),
// which the exchange spends. A refusal is answered in OAuth's shape, and
// its token.exchanged line names the actor anonymous: nothing about the
// caller was verified.
type Workload struct{}

// Authenticate checks the exchange request and verifies its subject token.
func (Workload) Authenticate(w http.ResponseWriter, r *http.Request, a *Attempt) (manage.Principal, bool, error) {
	node, ctx := a.Node, r.Context()
	refuse := func(e *oauthError) (manage.Principal, bool, error) {
		node.Manage.ExchangeRefused(ctx, e.refusal())
		writeOAuthError(w, e)
		return manage.Principal{}, false, nil
	}
	// Every anonymous attempt counts, whatever it asks, before anything
	// is verified or written.
	if !brakeExchange(ctx, node, a.Line.ClientIP, w) {
		return manage.Principal{}, false, nil
	}
	if r.Method != http.MethodPost {
		node.Manage.ExchangeRefused(ctx, reason.New(reason.MethodNotAllowedCode, r.Method+" is not served at "+ExchangePath))
		w.Header().Set("Allow", http.MethodPost)
		WriteMethodNotAllowed(w, r)
		return manage.Principal{}, false, nil
	}
	if node.Workloads == nil {
		return refuse(badExchange("unsupported_grant_type", reason.ExchangeNotConfigured, "token exchange is not configured: no workload issuer is set up"))
	}
	ask, bad := parseExchange(r)
	if bad != nil {
		return refuse(bad)
	}
	id, err := node.Workloads.Verify(ctx, ask.subjectToken)
	if err != nil {
		e := subjectRefusal(err)
		if e.status >= 500 {
			node.Logger.Warn("token exchange: the workload issuer could not be reached", zap.Error(err))
		}
		return refuse(e)
	}
	subject := sha256.Sum256([]byte(ask.subjectToken))
	return manage.Principal{
		Name: manage.WorkloadPrincipal(id.Issuer, id.Principal), Kind: manage.WorkloadKind, Issuer: id.Issuer, Claims: id.Claims,
		Subject: manage.Subject{Hash: subject[:], Expires: id.Expiry},
	}, true, nil
}

// exchangeToken answers an authenticated exchange: manage.Exchange asks
// the admin policy (action exchange) for the verified workload and issues
// the token, or refuses it in OAuth's shape.
func exchangeToken(c *call, w http.ResponseWriter, r *http.Request) {
	ask := askOf(r.PostForm)
	secret, tok, err := c.node.Manage.Exchange(r.Context(), c.actor, ask.scopes, ask.service)
	if err != nil {
		e := exchangeRefusal(err)
		if e.status >= 500 {
			c.node.Logger.Error("token exchange failed", zap.Error(err))
		}
		writeOAuthError(w, e)
		return
	}
	w.Header().Set("Pragma", "no-cache") // RFC 6749 section 5.1, with Cache-Control: no-store
	WriteJSON(w, http.StatusOK, api.TokenExchangeResult{
		AccessToken: secret, IssuedTokenType: tokenTypeAccess, TokenType: "Bearer",
		ExpiresIn: int64(tok.ExpiresAt.Sub(tok.NotBefore) / time.Second),
		Scope:     strings.Join(tok.Scopes, " "), TokenID: tok.ID,
	})
}

// subjectDescriptions say what was wrong with a subject token, per
// identity's reason code, without quoting anything from it.
var subjectDescriptions = map[string]string{
	identity.ReasonMalformed:        "the subject token is not a signed JWT",
	identity.ReasonAlgorithm:        "the subject token is signed with an algorithm that is not allowed",
	identity.ReasonSignature:        "the subject token's signature does not verify",
	identity.ReasonIssuer:           "the subject token's issuer is not a configured workload issuer",
	identity.ReasonAudience:         "the subject token is not issued for this gateway's audience",
	identity.ReasonExpired:          "the subject token has expired",
	identity.ReasonNotYetValid:      "the subject token is not valid yet",
	identity.ReasonTooOld:           "the subject token was issued too long ago",
	identity.ReasonPrincipalMissing: "the subject token lacks the principal claim",
	identity.ReasonPrincipalInvalid: "the subject token's principal claim holds characters or a prefix a principal may not have",
}

// subjectRefusal answers a subject token the workload issuers did not
// accept: invalid_request (RFC 8693 section 2.2.2), or 503 when the
// issuer could not be reached to check it.
func subjectRefusal(err error) *oauthError {
	var ref *identity.Refusal
	if !errors.As(err, &ref) || ref.Unavailable() {
		return &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", reason: identity.ReasonIssuerUnavailable,
			desc: "the workload issuer could not be reached to verify the subject token; try again"}
	}
	desc, ok := subjectDescriptions[ref.Code]
	if !ok {
		desc = "the subject token was not accepted"
	}
	return badExchange("invalid_request", ref.Code, desc)
}

// exchangeRefusal maps what manage.Exchange refused to OAuth: what the
// policy or the scope rules refuse is invalid_scope, a bad service
// invalid_target; a policy or store failure is 503 (fail closed).
func exchangeRefusal(err error) *oauthError {
	var le *lifecycle.Error
	var pe *manage.PolicyError
	switch {
	case errors.As(err, &le) && le.Code == reason.ServiceInvalid:
		return badExchange("invalid_target", le.Code, le.Detail)
	case errors.As(err, &le) && (le.Class == lifecycle.KindForbidden || le.Code == reason.ScopeInvalid):
		return badExchange("invalid_scope", le.Code, le.Detail)
	case errors.As(err, &le):
		return badExchange("invalid_request", le.Code, le.Detail)
	case errors.As(err, &pe):
		return &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", reason: reason.PolicyUnavailable, desc: "the admin policy could not decide; try again"}
	}
	return &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", reason: reason.StoreUnavailable, desc: "the token store failed; try again"}
}

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	if e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Pragma", "no-cache")
	WriteJSON(w, e.status, api.OAuthError{Error: e.code, Description: oauthText(e.desc), Reason: e.reason})
}

// oauthText keeps to the characters RFC 6749 section 5.2 allows in
// error_description: printable ASCII without '"' and '\'.
func oauthText(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\':
			return '/'
		case r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, s)
}

// brakeExchange counts r's attempt against its client address. Over the
// limit it answers 429 rate_limited with Retry-After (OAuth's shape, as
// the exchange answers) and returns false; only the first refusal of an
// address in a window writes its own audit line, the others are counted
// into one summary line when the window ends.
func brakeExchange(ctx context.Context, node *Node, clientIP string, w http.ResponseWriter) bool {
	addr := addrlimit.Key(clientIP)
	v, ended := node.ExchangeBrake.Attempt(addr)
	node.writeBrakeSummaries(ended)
	if v.Allowed {
		return true
	}
	const desc = "too many exchange attempts from this address; retry after the time Retry-After says"
	if v.Audit {
		node.Manage.ExchangeThrottled(ctx, addr, desc, 1)
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(v.RetryAfter/time.Second)))
	writeOAuthError(w, &oauthError{status: http.StatusTooManyRequests, code: "invalid_request", reason: reason.RateLimited, desc: desc})
	return false
}

// FlushBrake writes the summaries of the brake's open windows; the app
// calls it when its config is cleaned up.
func (n *Node) FlushBrake() { n.writeBrakeSummaries(n.ExchangeBrake.Flush()) }

// writeBrakeSummaries writes one line per address for the refusals the
// brake counted without a line of their own.
func (n *Node) writeBrakeSummaries(done []addrlimit.Summary) {
	for _, s := range done {
		n.Manage.ExchangeThrottled(context.Background(), s.Addr,
			fmt.Sprintf("%d more exchange attempts refused between %s and %s", s.Refused,
				s.From.UTC().Format(time.RFC3339), s.To.UTC().Format(time.RFC3339)), s.Refused)
	}
}
