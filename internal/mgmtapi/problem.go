package mgmtapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/token"
)

// This file is where refusals from the packages below become HTTP
// answers: they carry a kind, and only this layer knows status codes.

// writeError answers a refusal with its status and code, or a technical
// failure with 503 and no internals.
func writeError(w http.ResponseWriter, err error) (status int, technical bool) {
	var rf *reason.Refusal
	if errors.As(err, &rf) {
		status = rf.Class.Status()
		if rf.Class == reason.Unavailable {
			w.Header().Set("Retry-After", "1")
		}
		WriteProblem(w, rf)
		return status, false
	}
	code := reason.StoreUnavailable
	var pe *manage.PolicyError
	if errors.As(err, &pe) {
		code = reason.PolicyUnavailable
	}
	w.Header().Set("Retry-After", "1")
	WriteProblem(w, reason.New(code, ""))
	return http.StatusServiceUnavailable, true
}

// outcomeOf is what the call line says of a call whose action was refused
// with err: deny with its reason codes (the action line's), so that "all
// denies" finds it, or error for a technical failure.
func outcomeOf(err error, technical bool) (decision string, reasons []string) {
	var rf *reason.Refusal
	var pe *manage.PolicyError
	switch {
	case errors.As(err, &rf):
		return gateway.Deny, rf.AllReasons()
	case errors.As(err, &pe):
		return gateway.Error, []string{reason.PolicyUnavailable}
	case technical:
		return gateway.Error, []string{reason.StoreUnavailable}
	}
	return gateway.Allow, nil
}

// WriteProblem writes the one error shape of the management API, RFC 9457
// problem details, with the reason code as the extension member "reason"
// so that clients branch on a code rather than on words. The refusal's
// class gives the status.
func WriteProblem(w http.ResponseWriter, rf *reason.Refusal) {
	status := rf.Class.Status()
	body, _ := json.Marshal(api.ErrorBody{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: rf.Detail, Reason: rf.Code})
	w.Header().Set("Content-Type", api.ProblemType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// maxBodyBytes bounds management request bodies; a token request is a few
// hundred bytes.
const maxBodyBytes = 64 << 10

// decodeBody reads a JSON body strictly: one object, known fields only,
// bounded size.
func decodeBody(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return reason.New(reason.ContentTypeInvalid, "send application/json")
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return reason.New(reason.BodyTooLarge, fmt.Sprintf("body exceeds %d bytes", maxBodyBytes))
	}
	if err != nil {
		return reason.New(reason.BodyInvalid, "body could not be read")
	}
	// encoding/json would turn invalid bytes into U+FFFD and store text
	// other than what was sent; refuse it instead.
	if !utf8.Valid(raw) {
		return reason.New(reason.BodyInvalid, "body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return reason.New(reason.BodyInvalid, "body is not the expected JSON object: "+jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return reason.New(reason.BodyInvalid, "body holds more than one JSON value")
	}
	return nil
}

// jsonProblem describes a decoding error without quoting the input back.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		if strings.Contains(err.Error(), token.Prefix) {
			return "unknown field" // never echo what may be a pasted secret
		}
		return strings.TrimPrefix(err.Error(), "json: ")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "body is empty or cut short"
	}
	return "malformed JSON"
}

// encodingFailedBody answers a value WriteJSON could not encode.
var encodingFailedBody = []byte(`{"error":"server_error","reason":"` + reason.EncodingFailed + `"}`)

// WriteJSON answers v as JSON that no cache keeps.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = reason.DeclaredClass(reason.EncodingFailed).Status(), encodingFailedBody
	}
	w.Header().Set("Content-Type", "application/json")
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
			if _, pattern := mux.Handler(probe); pattern != "" && pattern != catchAll && pattern != "/" {
				allow = append(allow, m)
				if m == http.MethodGet {
					allow = append(allow, http.MethodHead)
				}
			}
		}
		if len(allow) == 0 {
			WriteProblem(w, reason.New(reason.RouteUnknown, ""))
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		WriteMethodNotAllowed(w, r)
	}
}

// WriteMethodNotAllowed refuses r's method; the caller sets Allow.
func WriteMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	WriteProblem(w, reason.New(reason.MethodNotAllowedCode, r.Method+" is not served here; Allow lists the methods that are"))
}

// statusRecorder remembers the status a route answered with, for the
// call line.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}
