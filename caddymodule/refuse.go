package caddymodule

import (
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokengate/caddy-tokengate/internal/gatehttp"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/mgmtapi"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// refuse answers a refused call. It returns the status it chose and, when
// the server's error routes take the answer over, the caddyhttp.Error to
// return to them. The headers and the status come from gatehttp; the body
// is the data plane's {"error","reason","request_id"}, or with problem the
// management API's RFC 9457 problem details.
func refuse(w http.ResponseWriter, r *http.Request, res gateway.Result, requestID string, problem bool) (int, error) {
	answer := gatehttp.SetRefusalHeaders(w.Header(), res)
	code := res.Refusal.Code
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("tokengate.reason", code)
	repl.Set("tokengate.error", answer.Error)
	repl.Set("tokengate.request_id", requestID)

	if srv := serverWithErrorRoutes(r); srv != nil {
		// The message is the reason code alone, never a store or policy
		// error: error routes may echo {http.error.message} to the
		// client. Built only here: caddyhttp.Error takes a stack frame
		// and makes an id, work a flood of refusals need not pay for.
		herr := caddyhttp.Error(answer.Status, errors.New(code))
		if errorRoutesAnswer(r, srv, herr) {
			return answer.Status, herr
		}
	}
	if problem {
		mgmtapi.WriteProblem(w, &reason.Refusal{Code: code, Class: res.Refusal.Class})
		return answer.Status, nil
	}
	gatehttp.WriteRefusal(w, answer, code, requestID)
	return answer.Status, nil
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
