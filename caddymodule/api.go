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

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/ratelimit"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// viewOf is a token as the API shows it.
func viewOf(t *store.Token, now time.Time) api.TokenView {
	return api.TokenView{
		ID: t.ID, State: lifecycle.State(t, now), Owner: t.Owner, Purpose: t.Purpose,
		Scopes: nonNil(t.Scopes), Services: nonNil(t.Services), CIDRs: nonNil(t.CIDRs),
		NotBefore: t.NotBefore, ExpiresAt: t.ExpiresAt, MaxUses: t.MaxUses, Uses: t.Uses, RateLimit: ratelimit.Format(t.RateLimit),
		CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy, HeldBy: t.HeldBy, ApprovedBy: t.ApprovedBy,
		RotatedFrom: t.RotatedFrom, RotatedTo: t.RotatedTo, GraceUntil: timePtr(t.GraceUntil),
		RevokedAt: timePtr(t.RevokedAt), RevokedBy: t.RevokedBy, RevokeReason: t.RevokeReason,
		ExposedAt: timePtr(t.ExposedAt), ExposureSource: t.ExposureSource, ExposureURL: t.ExposureURL,
		LastUsedAt: timePtr(t.LastUsedAt), LastUsedIP: t.LastUsedIP, UsedScopes: nonNil(t.UsedScopes),
	}
}

func viewsOf(ts []*store.Token, now time.Time) []api.TokenView {
	out := make([]api.TokenView, 0, len(ts))
	for _, t := range ts {
		out = append(out, viewOf(t, now))
	}
	return out
}

// maxBodyBytes bounds management request bodies; a token request is a few
// hundred bytes.
const maxBodyBytes = 64 << 10

// decodeBody reads a JSON body strictly: one object, known fields only,
// bounded size.
func decodeBody(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &requestRefusal{status: http.StatusUnsupportedMediaType, code: "content_type_invalid", msg: "send application/json"}
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &requestRefusal{status: http.StatusRequestEntityTooLarge, code: "body_too_large", msg: fmt.Sprintf("body exceeds %d bytes", maxBodyBytes)}
	}
	if err != nil {
		return &requestRefusal{status: http.StatusBadRequest, code: "body_invalid", msg: "body could not be read"}
	}
	// encoding/json would turn invalid bytes into U+FFFD and store text
	// other than what was sent; refuse it instead.
	if !utf8.Valid(raw) {
		return &requestRefusal{status: http.StatusBadRequest, code: "body_invalid", msg: "body is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &requestRefusal{status: http.StatusBadRequest, code: "body_invalid", msg: "body is not the expected JSON object: " + jsonProblem(err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &requestRefusal{status: http.StatusBadRequest, code: "body_invalid", msg: "body holds more than one JSON value"}
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
