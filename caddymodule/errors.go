package caddymodule

import (
	"errors"
	"net/http"

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
		writeJSON(w, status, api.ErrorBody{Error: http.StatusText(status), Reason: le.Code, Message: le.Msg})
		return status, false
	case errors.As(err, &re):
		writeJSON(w, re.status, api.ErrorBody{Error: http.StatusText(re.status), Reason: re.code, Message: re.msg})
		return re.status, false
	}
	reason := "store_unavailable"
	var pe *manage.PolicyError
	if errors.As(err, &pe) {
		reason = "policy_unavailable"
	}
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, api.ErrorBody{Error: "Service Unavailable", Reason: reason})
	return http.StatusServiceUnavailable, true
}
