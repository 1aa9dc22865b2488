package caddymodule

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/identity"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/token"
)

// People on the management API: when the app has an oidc issuer, a bearer
// credential that is not a tokengate secret is taken for a person's ID
// token and verified against that issuer. The two kinds never overlap:
// every tokengate secret starts with token.Prefix, which no JWT does.

// personVar is the request variable through which the ID token check
// hands the verified person to the routes. Clients cannot set request
// variables.
const personVar = "tokengate.person"

// maxIDTokenLen bounds a bearer ID token; real ones are one to a few KiB.
const maxIDTokenLen = 16 << 10

// lastUnreachableWarn is when the log last said the identity provider is
// unreachable: while it is down every ID token call fails, and one warning
// a minute says so without drowning the log.
var lastUnreachableWarn atomic.Int64

func warnUnreachable() bool {
	now, last := time.Now().UnixNano(), lastUnreachableWarn.Load()
	return now-last >= int64(time.Minute) && lastUnreachableWarn.CompareAndSwap(last, now)
}

// idTokenChallenge is the WWW-Authenticate of a refused ID token (RFC 6750).
const idTokenChallenge = `Bearer realm="tokengate", error="invalid_token"`

// personCredential returns r's bearer credential when it is to be verified
// as an ID token: the app has an oidc issuer, Authorization carries exactly
// one Bearer credential, and it is not a tokengate secret. Anything else
// (no oidc, no credential, two of them, a tg_ secret) takes the management
// token's path, which refuses what it cannot use.
func (h *AdminHandler) personCredential(r *http.Request) (string, bool) {
	if h.auth.app.people == nil || h.auth.Header != "Authorization" {
		return "", false
	}
	values := r.Header.Values("Authorization")
	if len(values) != 1 {
		return "", false
	}
	scheme, credential, _ := strings.Cut(values[0], " ")
	credential = strings.TrimSpace(credential)
	if !strings.EqualFold(scheme, "Bearer") || credential == "" || strings.HasPrefix(credential, token.Prefix) {
		return "", false
	}
	return credential, true
}

// servePerson verifies raw as a person's ID token and serves the API as
// that person, writing the call's audit line as the gateway does for
// management tokens (with the person as actor). A refused ID token gets
// 401 problem details with the identity reason and a WWW-Authenticate
// challenge; an unreachable issuer 503 (fail closed). The token is never
// logged or echoed.
func (h *AdminHandler) servePerson(w http.ResponseWriter, r *http.Request, raw string) {
	start := time.Now()
	app := h.auth.app
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	clientIP, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	path, escaped, pathOK := cleanPath(r.URL.Path, r.URL.EscapedPath())
	line := audit.Call{
		Service:   manage.ManagementService,
		ClientIP:  clientIP,
		Method:    r.Method,
		Host:      r.Host,
		Path:      path,
		Cache:     gateway.CacheNone,
		RequestID: requestID(repl),
	}
	line.TraceID, line.SpanID = traceIDs(r)
	defer func() {
		line.Duration = time.Since(start)
		metrics.decision(line.Service, line.Decision, line.Reasons, line.Cache)
		app.audit.Call(&line)
	}()

	deny := func(status int, code, detail string) {
		line.Decision, line.Reasons, line.Status = gateway.Deny, []string{code}, status
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", idTokenChallenge)
		}
		writeProblem(w, status, code, detail)
	}
	switch {
	case !pathOK:
		line.Path = r.URL.EscapedPath()
		deny(http.StatusBadRequest, reason.PathInvalid, "")
		return
	case len(raw) > maxIDTokenLen:
		deny(http.StatusUnauthorized, identity.ReasonMalformed, "the bearer credential is too long for an ID token")
		return
	}
	id, err := app.people.Verify(r.Context(), raw)
	if err != nil {
		var refusal *identity.Refusal
		if !errors.As(err, &refusal) || refusal.Unavailable() {
			// The issuer's discovery or keys could not be fetched: the
			// token may be fine, so this is ours to retry, not a 401.
			if warnUnreachable() {
				h.auth.logger.Warn("ID tokens not verified: identity provider unreachable (warned once a minute; every refused call has its audit line)",
					zap.String("issuer", app.people.Issuer()), zap.String("request_id", line.RequestID), zap.Error(err))
			}
			line.Decision, line.Reasons, line.Status = gateway.Error, []string{identity.ReasonIssuerUnavailable}, http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
			writeProblem(w, http.StatusServiceUnavailable, identity.ReasonIssuerUnavailable, "")
			return
		}
		status := http.StatusUnauthorized
		if refusal.Forbidden() {
			status = http.StatusForbidden
		}
		deny(status, refusal.Reason, refusal.Detail)
		return
	}
	// Audit fails closed for people as for tokens.
	if hold := app.auditHold(); hold != "" {
		line.Decision, line.Reasons, line.Status = gateway.Error, []string{hold}, http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, hold, "")
		return
	}

	person := &manage.Principal{
		Name:   id.Principal,
		Kind:   manage.PersonKind,
		Groups: id.Groups,
		Claims: id.Claims,
		Issuer: id.Issuer,
	}
	// A sign-in with other groups than before refreshes the groups
	// recorded on the management tokens the person holds; if that fails,
	// nothing is served (a token would keep groups the IdP took away).
	if app.groupsSeen.changed(person.Name, person.Groups) {
		if _, err := app.manage.RefreshGroups(r.Context(), *person); err != nil {
			app.groupsSeen.forget(person.Name)
			h.auth.logger.Error("refreshing the groups on a person's management tokens", zap.String("request_id", line.RequestID), zap.Error(err))
			line.Decision, line.Reasons, line.Status = gateway.Error, []string{reason.StoreUnavailable}, http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
			writeProblem(w, http.StatusServiceUnavailable, reason.StoreUnavailable, "")
			return
		}
	}

	line.Decision, line.Actor = gateway.Allow, id.Principal
	r.URL.Path, r.URL.RawPath = path, escaped
	r.Header.Del("Authorization")
	caddyhttp.SetVar(r.Context(), personVar, person)
	rec := caddyhttp.NewResponseRecorder(w, nil, nil)
	h.mux.ServeHTTP(rec, r)
	line.Status = rec.Status()
	if m, ok := caddyhttp.GetVar(r.Context(), managementVar).(managementOutcome); ok {
		line.Decision, line.Reasons = m.decision, m.reasons
	}
}
