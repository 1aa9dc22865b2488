package caddymodule

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/manage"
)

// This file is where refusals from the packages below become HTTP
// answers: they carry a kind, and only this layer knows status codes.

// kindStatus maps each kind of refusal to its status code. A kind missing
// here would be a programming error; it answers 500 rather than guess.
var kindStatus = map[lifecycle.Kind]int{
	lifecycle.KindInvalid:   http.StatusBadRequest,
	lifecycle.KindForbidden: http.StatusForbidden,
	lifecycle.KindNotFound:  http.StatusNotFound,
	lifecycle.KindConflict:  http.StatusConflict,
	lifecycle.KindGone:      http.StatusGone,
}

// statusOf is the status code a refusal of kind k is answered with.
func statusOf(k lifecycle.Kind) int {
	if status, ok := kindStatus[k]; ok {
		return status
	}
	return http.StatusInternalServerError
}

// requestRefusal refuses the HTTP request itself (its media type, its
// size, its JSON) before any management action sees it.
type requestRefusal struct {
	status int
	code   string
	msg    string
}

func (e *requestRefusal) Error() string { return e.code + ": " + e.msg }

// writeError answers a refusal with its status and code, or a technical
// failure with 503 and no internals.
func writeError(w http.ResponseWriter, err error) (status int, technical bool) {
	var le *lifecycle.Error
	var re *requestRefusal
	switch {
	case errors.As(err, &le):
		status = statusOf(le.Kind)
		writeProblem(w, status, le.Code, le.Msg)
		return status, false
	case errors.As(err, &re):
		writeProblem(w, re.status, re.code, re.msg)
		return re.status, false
	}
	reason := "store_unavailable"
	var pe *manage.PolicyError
	if errors.As(err, &pe) {
		reason = "policy_unavailable"
	}
	w.Header().Set("Retry-After", "1")
	writeProblem(w, http.StatusServiceUnavailable, reason, "")
	return http.StatusServiceUnavailable, true
}

// writeProblem writes the one error shape of the management API, RFC 9457
// problem details, with the reason code as the extension member "reason"
// so that clients branch on a code rather than on words.
func writeProblem(w http.ResponseWriter, status int, reason, detail string) {
	body, _ := json.Marshal(api.ErrorBody{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Reason: reason})
	w.Header().Set("Content-Type", api.ProblemType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// probeMethods are the methods a route of the API may be registered for.
var probeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// unknownRoute answers what no route of mux took. It is mux's catch-all
// (pattern catchAll), so the ServeMux never reaches its own 405; this
// asks mux which methods it serves the path with: a known path gets 405
// with Allow, anything else 404.
func unknownRoute(mux *http.ServeMux, catchAll string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range probeMethods {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "" && pattern != catchAll {
				allow = append(allow, m)
				if m == http.MethodGet {
					allow = append(allow, http.MethodHead)
				}
			}
		}
		if len(allow) == 0 {
			writeProblem(w, http.StatusNotFound, "route_unknown", "")
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeProblem(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not served here; Allow lists the methods that are")
	}
}
