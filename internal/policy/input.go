package policy

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokengate/caddy-tokengate/internal/ratelimit"
	"github.com/tokengate/caddy-tokengate/store"
)

// Request is the part of an HTTP call the gateway policy sees.
type Request struct {
	Method string
	Host   string
	// Path is the cleaned path, as Caddy's path matchers see it; RawPath
	// is the path as the client sent it.
	Path     string
	RawPath  string
	RemoteIP string
	// Headers holds only the headers the route lets the policy see,
	// keyed by lower-case name.
	Headers map[string]string
}

// TokenTerm converts a token record to the input.token object. The result
// is immutable, so the gateway builds it once per token version and reuses
// it for every call. It deliberately holds no secret and no hash, and no
// revocation or rotation time either: liveness is decided in Go before
// the policy runs, so no policy can bring a dead token back.
func TokenTerm(t *store.Token) *ast.Term {
	fields := [][2]*ast.Term{
		{keyID, ast.StringTerm(t.ID)},
		{keyOwner, ast.StringTerm(t.Owner)},
		{keyHeldBy, ast.StringTerm(t.HeldBy)},
		{keyPurpose, ast.StringTerm(t.Purpose)},
		{keyScopes, stringsTerm(t.Scopes)},
		{keyServices, stringsTerm(t.Services)},
		{keyCIDRs, stringsTerm(t.CIDRs)},
		{keyNotBefore, nanosTerm(t.NotBefore)},
		{keyExpiresAt, nanosTerm(t.ExpiresAt)},
		{keyMaxUses, ast.InternedTerm(int(t.MaxUses))},
		{keyUses, ast.InternedTerm(int(t.Uses))},
	}
	// A token without a limit of its own has no rate_limit, so a rule
	// can test for one with `input.token.rate_limit`.
	if !t.RateLimit.IsZero() {
		fields = append(fields, [2]*ast.Term{keyRateLimit, RateLimitTerm(t.RateLimit)})
	}
	return ast.ObjectTerm(fields...)
}

// RateLimitTerm is a limit as policies see it: {"requests": N,
// "window": "1m"}.
func RateLimitTerm(l store.RateLimit) *ast.Term {
	return ast.ObjectTerm(
		[2]*ast.Term{keyRequests, ast.InternedTerm(int(l.Requests))},
		[2]*ast.Term{keyWindow, ast.StringTerm(ratelimit.WindowName(l.Window))},
	)
}

// The keys of input.token, shared by every token's term: each cached
// token holds its term, and eleven key terms per token are eleven more
// objects for the garbage collector to scan, ten thousand tokens over.
var (
	keyID        = ast.StringTerm("id")
	keyOwner     = ast.StringTerm("owner")
	keyHeldBy    = ast.StringTerm("held_by")
	keyPurpose   = ast.StringTerm("purpose")
	keyScopes    = ast.StringTerm("scopes")
	keyServices  = ast.StringTerm("services")
	keyCIDRs     = ast.StringTerm("cidrs")
	keyNotBefore = ast.StringTerm("not_before")
	keyExpiresAt = ast.StringTerm("expires_at")
	keyMaxUses   = ast.StringTerm("max_uses")
	keyUses      = ast.StringTerm("uses")
	keyRateLimit = ast.StringTerm("rate_limit")
)

// The keys of the gateway input. Terms are never modified once built (the
// gateway already shares each token's term between calls), so one copy
// serves every call.
var (
	keyToken    = ast.StringTerm("token")
	keyRequest  = ast.StringTerm("request")
	keyRoute    = ast.StringTerm("route")
	keyNow      = ast.StringTerm("now")
	keyMethod   = ast.StringTerm("method")
	keyHost     = ast.StringTerm("host")
	keyPath     = ast.StringTerm("path")
	keyRawPath  = ast.StringTerm("raw_path")
	keyRemoteIP = ast.StringTerm("remote_ip")
	keyHeaders  = ast.StringTerm("headers")
	keyService  = ast.StringTerm("service")
)

// noHeaders is input.request.headers of every route that lets the policy
// see no header: most of them.
var noHeaders = ast.ObjectTerm()

// GatewayInput builds the input document for GatewayQuery directly as an
// OPA value, skipping the JSON round trip a map[string]any would cost.
func GatewayInput(tokenTerm *ast.Term, req Request, service string, now time.Time) ast.Value {
	headersTerm := noHeaders
	if len(req.Headers) > 0 {
		headers := make([][2]*ast.Term, 0, len(req.Headers))
		for k, v := range req.Headers {
			headers = append(headers, item(k, ast.StringTerm(v)))
		}
		headersTerm = ast.ObjectTerm(headers...)
	}
	// The per-call terms share one allocation; the common methods are
	// shared terms, and so is the path when the client sent it clean
	// (most calls), as raw_path.
	t := new([7]ast.Term)
	method, ok := methodTerms[req.Method]
	if !ok {
		t[0].Value = ast.String(req.Method)
		method = &t[0]
	}
	t[1].Value = ast.String(req.Host)
	t[2].Value = ast.String(req.Path)
	t[3].Value = ast.String(req.RemoteIP)
	rawPath := &t[2]
	if req.RawPath != req.Path {
		t[4].Value = ast.String(req.RawPath)
		rawPath = &t[4]
	}
	t[5].Value = ast.NewObject(
		[2]*ast.Term{keyMethod, method},
		[2]*ast.Term{keyHost, &t[1]},
		[2]*ast.Term{keyPath, &t[2]},
		[2]*ast.Term{keyRawPath, rawPath},
		[2]*ast.Term{keyRemoteIP, &t[3]},
		[2]*ast.Term{keyHeaders, headersTerm},
	)
	t[6].Value = nanosValue(now)
	return ast.NewObject(
		[2]*ast.Term{keyToken, tokenTerm},
		[2]*ast.Term{keyRequest, &t[5]},
		[2]*ast.Term{keyRoute, routeTerm(service)},
		[2]*ast.Term{keyNow, &t[6]},
	)
}

// routeTerms holds input.route per service: a gateway serves a handful of
// services, so building the same object on every call (five allocations)
// is waste. Services come from configuration, but `check` takes one from
// an API caller, so the map stops growing at maxRouteTerms and further
// services are built per call.
var (
	routeTerms     sync.Map // service -> *ast.Term
	routeTermCount atomic.Int32
)

const maxRouteTerms = 256

func routeTerm(service string) *ast.Term {
	if t, ok := routeTerms.Load(service); ok {
		return t.(*ast.Term)
	}
	t := ast.ObjectTerm([2]*ast.Term{keyService, ast.StringTerm(service)})
	if routeTermCount.Load() < maxRouteTerms {
		if _, loaded := routeTerms.LoadOrStore(service, t); !loaded {
			routeTermCount.Add(1)
		}
	}
	return t
}

// methodTerms are the request methods most calls use, built once.
var methodTerms = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, name := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		m[name] = ast.StringTerm(name)
	}
	return m
}()

func item(key string, value *ast.Term) [2]*ast.Term {
	return [2]*ast.Term{ast.StringTerm(key), value}
}

func stringsTerm(values []string) *ast.Term {
	terms := make([]*ast.Term, len(values))
	for i, v := range values {
		terms[i] = ast.StringTerm(v)
	}
	return ast.ArrayTerm(terms...)
}

// nanosTerm encodes a time as Unix nanoseconds, the unit of OPA's time
// built-ins; the zero time is 0 so policies can test "unset" with > 0.
func nanosTerm(t time.Time) *ast.Term {
	if t.IsZero() {
		return ast.InternedTerm(0)
	}
	return ast.IntNumberTerm(int(t.UnixNano()))
}

// nanosValue is nanosTerm's value (the same decimal digits), for a term
// the caller allocates.
func nanosValue(t time.Time) ast.Value {
	if t.IsZero() {
		return ast.Number("0")
	}
	return ast.Number(strconv.FormatInt(t.UnixNano(), 10))
}
