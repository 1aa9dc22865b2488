package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// JSON shapes shared by the admin endpoint, the management API and the CLI.

// TokenView is a token as the API shows it: everything but the hash.
type TokenView struct {
	ID           string     `json:"id"`
	State        string     `json:"state"`
	Owner        string     `json:"owner"`
	Purpose      string     `json:"purpose"`
	Scopes       []string   `json:"scopes"`
	Services     []string   `json:"services"`
	CIDRs        []string   `json:"cidrs"`
	NotBefore    time.Time  `json:"not_before"`
	ExpiresAt    time.Time  `json:"expires_at"`
	MaxUses      int64      `json:"max_uses"`
	Uses         int64      `json:"uses"`
	CreatedAt    time.Time  `json:"created_at"`
	CreatedBy    string     `json:"created_by"`
	ApprovedBy   string     `json:"approved_by,omitempty"`
	RotatedFrom  string     `json:"rotated_from,omitempty"`
	RotatedTo    string     `json:"rotated_to,omitempty"`
	GraceUntil   *time.Time `json:"grace_until,omitempty"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	RevokedBy    string     `json:"revoked_by,omitempty"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	LastUsedAt   *time.Time `json:"last_used_at,omitempty"`
	LastUsedIP   string     `json:"last_used_ip,omitempty"`
	UsedScopes   []string   `json:"used_scopes"`
}

func viewOf(t *store.Token, now time.Time) TokenView {
	return TokenView{
		ID: t.ID, State: lifecycle.State(t, now), Owner: t.Owner, Purpose: t.Purpose,
		Scopes: nonNil(t.Scopes), Services: nonNil(t.Services), CIDRs: nonNil(t.CIDRs),
		NotBefore: t.NotBefore, ExpiresAt: t.ExpiresAt, MaxUses: t.MaxUses, Uses: t.Uses,
		CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy, ApprovedBy: t.ApprovedBy,
		RotatedFrom: t.RotatedFrom, RotatedTo: t.RotatedTo, GraceUntil: timePtr(t.GraceUntil),
		RevokedAt: timePtr(t.RevokedAt), RevokedBy: t.RevokedBy, RevokeReason: t.RevokeReason,
		LastUsedAt: timePtr(t.LastUsedAt), LastUsedIP: t.LastUsedIP, UsedScopes: nonNil(t.UsedScopes),
	}
}

func viewsOf(ts []*store.Token, now time.Time) []TokenView {
	out := make([]TokenView, 0, len(ts))
	for _, t := range ts {
		out = append(out, viewOf(t, now))
	}
	return out
}

// IssuedToken is the one response that carries a secret.
type IssuedToken struct {
	Secret string    `json:"secret"`
	Token  TokenView `json:"token"`
}

// APIError is the body of every refusal.
type APIError struct {
	Error   string `json:"error"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// maxBodyBytes bounds management request bodies; a token request is a few
// hundred bytes.
const maxBodyBytes = 64 << 10

// decodeBody reads a JSON body strictly: one object, known fields only,
// bounded size.
func decodeBody(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &lifecycle.Error{Status: http.StatusUnsupportedMediaType, Code: "content_type_invalid", Msg: "send application/json"}
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &lifecycle.Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Msg: fmt.Sprintf("body exceeds %d bytes", maxBodyBytes)}
	}
	if err != nil {
		return &lifecycle.Error{Status: http.StatusBadRequest, Code: "body_invalid", Msg: "body could not be read"}
	}
	// encoding/json would turn invalid bytes into U+FFFD and store text
	// other than what was sent; refuse it instead.
	if !utf8.Valid(raw) {
		return &lifecycle.Error{Status: http.StatusBadRequest, Code: "body_invalid", Msg: "body is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &lifecycle.Error{Status: http.StatusBadRequest, Code: "body_invalid", Msg: "body is not the expected JSON object: " + jsonProblem(err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &lifecycle.Error{Status: http.StatusBadRequest, Code: "body_invalid", Msg: "body holds more than one JSON value"}
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"server_error","reason":"encoding_failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// writeError answers a refusal with its status and code, or a technical
// failure with 503 and no internals.
func writeError(w http.ResponseWriter, err error) (status int, technical bool) {
	var e *lifecycle.Error
	if errors.As(err, &e) {
		writeJSON(w, e.Status, APIError{Error: http.StatusText(e.Status), Reason: e.Code, Message: e.Msg})
		return e.Status, false
	}
	reason := "store_unavailable"
	var pe *manage.PolicyError
	if errors.As(err, &pe) {
		reason = "policy_unavailable"
	}
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, APIError{Error: "Service Unavailable", Reason: reason})
	return http.StatusServiceUnavailable, true
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
