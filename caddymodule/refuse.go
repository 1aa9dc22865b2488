package caddymodule

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/mgmtapi"
	"github.com/tokengate/caddy-tokengate/internal/ratelimit"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// refuse answers a call that may not pass. It returns the status it chose
// and, when the server's error routes take the answer over, the
// caddyhttp.Error to return to them. The status follows the class of the
// reason the client is told, as the reason package declares it. The body
// is the data plane's {"error","reason","request_id"}, or with problem the
// management API's RFC 9457 problem details.
func refuse(w http.ResponseWriter, r *http.Request, res gateway.Result, requestID string, problem bool) (int, error) {
	main := reason.Main(res.Reasons)
	status, errCode := http.StatusForbidden, "insufficient_scope"
	challenge := `Bearer realm="tokengate", error="insufficient_scope"`
	class := reason.ClassOf(main)
	if res.Outcome == gateway.Error {
		class = reason.Unavailable // we failed closed, whatever the code
	}
	switch {
	case class == reason.Unavailable:
		status, errCode = http.StatusServiceUnavailable, "temporarily_unavailable"
		challenge = ""
		w.Header().Set("Retry-After", "1")
	case class == reason.Absent:
		// RFC 6750 section 3.1: a request without credentials gets the
		// challenge but no error code.
		status, errCode = http.StatusUnauthorized, "invalid_token"
		challenge = `Bearer realm="tokengate"`
	case class == reason.Invalid:
		status, errCode = http.StatusUnauthorized, "invalid_token"
		challenge = `Bearer realm="tokengate", error="invalid_token"`
	case class == reason.TooManyRequests:
		// The token is good; it has only to wait.
		status, errCode = http.StatusTooManyRequests, "too_many_requests"
		challenge = ""
		if !res.RateLimit.Limit.IsZero() {
			w.Header().Set("Retry-After", res.RateLimit.RetryAfter())
		}
	case class == reason.BadRequest:
		// The request itself is the problem, not its credential: no
		// challenge.
		status, errCode = http.StatusBadRequest, "invalid_request"
		challenge = ""
	}
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	setRateLimitFields(w.Header(), res)
	// A refusal is about this caller at this moment: no cache may keep it,
	// whoever writes the body.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")

	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("tokengate.reason", main)
	repl.Set("tokengate.error", errCode)
	repl.Set("tokengate.request_id", requestID)

	if srv := serverWithErrorRoutes(r); srv != nil {
		// The message is the reason code alone, never a store or policy
		// error: error routes may echo {http.error.message} to the
		// client. Built only here: caddyhttp.Error takes a stack frame
		// and makes an id, work a flood of refusals need not pay for.
		herr := caddyhttp.Error(status, errors.New(main))
		if errorRoutesAnswer(r, srv, herr) {
			return status, herr
		}
	}
	if problem {
		mgmtapi.WriteProblem(w, &reason.Refusal{Code: main, Class: class})
		return status, nil
	}
	body, _ := json.Marshal(map[string]string{"error": errCode, "reason": main, "request_id": requestID})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
	return status, nil
}

// The rate-limit fields' names as Go's header maps key them, made once.
var (
	rateLimitPolicyKey = http.CanonicalHeaderKey(ratelimit.PolicyField)
	rateLimitStateKey  = http.CanonicalHeaderKey(ratelimit.StateField)
)

// setRateLimitFields tells the client its rate limit, on every answer to
// a call that had one: RateLimit-Policy and RateLimit.
func setRateLimitFields(h http.Header, res gateway.Result) {
	if res.RateLimit.Limit.IsZero() {
		return
	}
	h[rateLimitPolicyKey] = []string{res.RateLimit.PolicyValue()}
	h[rateLimitStateKey] = []string{res.RateLimit.StateValue()}
}

// errorRoutesAnswer says whether the server's error routes would answer
// herr for r. Caddy answers a handler error that no error route matches
// with its status and an empty body; the JSON body is the documented
// default, so the handler keeps writing it unless a route matches: a
// handle_errors in another site on the same server (the Caddyfile adapter
// puts a host matcher in front of it) or one for other status codes
// (handle_errors 404) leaves tokengate's answers as they are.
func errorRoutesAnswer(r *http.Request, srv *caddyhttp.Server, herr caddyhttp.HandlerError) bool {
	// What the error routes will see: the error and its placeholders, and
	// the request as it arrived (the server restores it before running
	// them, undoing rewrites made on the way here).
	er := srv.Errors.WithError(r, herr)
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		u := *orig.URL
		er.Method, er.URL, er.RequestURI = orig.Method, &u, orig.RequestURI
	}
	return routesAnswer(srv.Errors.Routes, er, 0)
}

// serverWithErrorRoutes returns the server serving r when it has error
// routes (handle_errors), else nil.
func serverWithErrorRoutes(r *http.Request) *caddyhttp.Server {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil || srv.Errors == nil || len(srv.Errors.Routes) == 0 {
		return nil
	}
	return srv
}

// maxRouteDepth bounds the walk into nested subroutes.
const maxRouteDepth = 8

// routesAnswer says whether a route in routes matches r and has a handler
// other than a subroute, or a subroute one of whose routes answers.
func routesAnswer(routes caddyhttp.RouteList, r *http.Request, depth int) bool {
	if depth > maxRouteDepth {
		return true
	}
	for _, rt := range routes {
		if ok, err := rt.MatcherSets.AnyMatchWithError(r); err != nil || !ok {
			continue
		}
		for _, h := range rt.Handlers {
			sub, ok := h.(*caddyhttp.Subroute)
			if !ok || routesAnswer(sub.Routes, r, depth+1) {
				return true
			}
		}
		if rt.Terminal {
			return false
		}
	}
	return false
}
