package caddymodule

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/ratelimit"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/report"
	"github.com/tokengate/caddy-tokengate/store"
)

// The JSON routes shared by Caddy's admin endpoint (local operator, under
// /tokengate/) and the management API (tokengate_admin, under /v1/). Each
// route resolves who is calling, then hands the action to manage.Service,
// which asks the admin policy.

// caller is what a route needs: the app to act in and who acts.
type caller struct {
	app       *App
	principal manage.Principal
}

// resolver finds the caller of a request, or answers the request itself
// (with a refusal) and returns false.
type resolver func(w http.ResponseWriter, r *http.Request) (caller, bool)

type routes struct {
	resolve resolver
	logger  *zap.Logger
}

type routeFunc func(c caller, w http.ResponseWriter, r *http.Request) error

func (rt routes) handle(mux *http.ServeMux, pattern string, f routeFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c, ok := rt.resolve(w, r)
		if !ok {
			return
		}
		r = r.WithContext(audit.WithTrace(r.Context(), requestTrace(r)))
		if err := f(c, w, r); err != nil {
			_, technical := writeError(w, err)
			if technical {
				rt.logger.Error("token management failed", zap.String("route", pattern), zap.Error(err))
			}
			noteRefusal(r, err, technical)
		}
	})
}

// tokenRoutes are served on both endpoints.
func (rt routes) tokenRoutes(mux *http.ServeMux, prefix string) {
	rt.handle(mux, "GET "+prefix+"/tokens", listTokens)
	rt.handle(mux, "GET "+prefix+"/tokens/{id}", showToken)
	rt.handle(mux, "POST "+prefix+"/tokens/{id}/revoke", revokeToken)
	rt.handle(mux, "POST "+prefix+"/tokens/{id}/rotate", rotateToken)
	rt.handle(mux, "GET "+prefix+"/report", hygieneReport)
	rt.handle(mux, "POST "+prefix+"/check", checkDecision)
	mux.HandleFunc(prefix+"/", unknownRoute(mux, prefix+"/"))
}

// requestRoutes are the two-person flow, on the management API only: the
// local operator is not a person who could ask or approve.
func (rt routes) requestRoutes(mux *http.ServeMux, prefix string) {
	rt.handle(mux, "POST "+prefix+"/requests", createRequest)
	rt.handle(mux, "GET "+prefix+"/requests", listRequests)
	rt.handle(mux, "GET "+prefix+"/requests/{id}", showRequest)
	rt.handle(mux, "POST "+prefix+"/requests/{id}/approve", decideRequest(true))
	rt.handle(mux, "POST "+prefix+"/requests/{id}/deny", decideRequest(false))
	rt.handle(mux, "POST "+prefix+"/requests/{id}/claim", claimRequest)
}

func listTokens(c caller, w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	state := q.Get("state")
	if state != "" && !slices.Contains(store.States, state) {
		return &lifecycle.Error{Kind: lifecycle.KindInvalid, Code: "state_invalid", Msg: "state is one of " + strings.Join(store.States, ", ")}
	}
	toks, err := c.app.manage.ListTokens(r.Context(), c.principal, store.Filter{Owner: q.Get("owner"), Service: q.Get("service")}, state)
	if err != nil {
		return err
	}
	toks, err = page(w, r, toks, func(t *store.Token) string { return t.ID })
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewsOf(toks, c.app.now()))
	return nil
}

// Lists are paged: at most limit items (default listLimit, at most
// maxListLimit), in id order, and while more follow, a Link header
// (RFC 8288, rel="next") whose URL carries the opaque cursor. The body
// stays a plain array, so clients written before paging still read it.
const (
	listLimit    = 100
	maxListLimit = 1000
)

// page cuts the page that r's limit and cursor select out of items and
// sets the Link to the next one. The cursor is the last id of the page
// before, encoded so that clients treat it as opaque.
func page[T any](w http.ResponseWriter, r *http.Request, items []T, id func(T) string) ([]T, error) {
	q := r.URL.Query()
	limit := listLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return nil, &lifecycle.Error{Kind: lifecycle.KindInvalid, Code: "limit_invalid", Msg: "limit is a whole number from 1 to " + strconv.Itoa(maxListLimit)}
		}
		limit = n
	}
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(id(a), id(b)) })
	if v := q.Get("cursor"); v != "" {
		after, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(after) == 0 {
			return nil, &lifecycle.Error{Kind: lifecycle.KindInvalid, Code: "cursor_invalid", Msg: "cursor is not one this API gave out"}
		}
		start, _ := slices.BinarySearchFunc(items, string(after), func(it T, key string) int { return strings.Compare(id(it), key) })
		if start < len(items) && id(items[start]) == string(after) {
			start++
		}
		items = items[start:]
	}
	if len(items) > limit {
		items = items[:limit]
		q.Set("cursor", base64.RawURLEncoding.EncodeToString([]byte(id(items[limit-1]))))
		q.Set("limit", strconv.Itoa(limit))
		w.Header().Set("Link", "<"+r.URL.Path+"?"+q.Encode()+`>; rel="next"`)
	}
	return items, nil
}

func showToken(c caller, w http.ResponseWriter, r *http.Request) error {
	tok, err := c.app.manage.GetToken(r.Context(), c.principal, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewOf(tok, c.app.now()))
	return nil
}

func revokeToken(c caller, w http.ResponseWriter, r *http.Request) error {
	var body api.ReasonBody
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	tok, err := c.app.manage.Revoke(r.Context(), c.principal, r.PathValue("id"), body.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewOf(tok, c.app.now()))
	return nil
}

func rotateToken(c caller, w http.ResponseWriter, r *http.Request) error {
	var body api.RotateBody
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	grace := lifecycle.DefaultGrace
	if body.Grace != "" {
		var err error
		if grace, err = caddy.ParseDuration(body.Grace); err != nil {
			return &lifecycle.Error{Kind: lifecycle.KindInvalid, Code: "grace_invalid", Msg: "grace is not a duration such as 10m or 1d"}
		}
	}
	secret, tok, err := c.app.manage.Rotate(r.Context(), c.principal, r.PathValue("id"), grace)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.IssuedToken{Secret: secret, Token: viewOf(tok, c.app.now())})
	return nil
}

func hygieneReport(c caller, w http.ResponseWriter, r *http.Request) error {
	unused := report.DefaultUnused
	if v := r.URL.Query().Get("unused_days"); v != "" {
		days, err := strconv.Atoi(v)
		if err != nil || days < 1 || days > 3650 {
			return &lifecycle.Error{Kind: lifecycle.KindInvalid, Code: "unused_days_invalid", Msg: "unused_days is a whole number of days from 1 to 3650"}
		}
		unused = time.Duration(days) * 24 * time.Hour
	}
	rep, err := c.app.manage.Report(r.Context(), c.principal, unused)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, reportView(rep))
	return nil
}

func checkDecision(c caller, w http.ResponseWriter, r *http.Request) error {
	var body api.CheckRequest
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.TokenID == "" || body.Service == "" {
		return &lifecycle.Error{Kind: lifecycle.KindInvalid, Code: "check_invalid", Msg: "token_id and service are required"}
	}
	// The path is read as the gateway reads a request's: cleaned as
	// Caddy's matchers clean it, refused where the readings could differ,
	// so a dry run never answers otherwise than the data plane.
	u, err := url.ParseRequestURI(cmpOr(body.Path, "/"))
	if err != nil || u.RawQuery != "" || u.Fragment != "" {
		return &lifecycle.Error{Kind: lifecycle.KindInvalid, Code: reason.PathInvalid, Msg: "path must be an absolute path without query"}
	}
	rawPath := u.EscapedPath()
	path, _, ok := cleanPath(u.Path, rawPath)
	if !ok {
		return &lifecycle.Error{Kind: lifecycle.KindInvalid, Code: reason.PathInvalid, Msg: "the gateway refuses this path (400 path_invalid)"}
	}
	req := policy.Request{Method: cmpOr(body.Method, http.MethodGet), Host: body.Host, Path: path, RawPath: rawPath, RemoteIP: body.IP}
	d, input, err := c.app.manage.CheckInput(r.Context(), c.principal, body.TokenID, req, body.Service)
	if err != nil {
		return err
	}
	res := api.CheckResult{Allow: d.Allow, Reasons: nonNil(d.Reasons), Scope: d.Scope, PolicyRev: d.Revision}
	if body.WithInput && input != nil {
		doc, err := ast.JSON(input)
		if err != nil {
			return err
		}
		if res.Input, err = json.Marshal(doc); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// requestStates are the states a request list filters on: as stored, and
// "lapsed" (approved, not claimed in time).
var requestStates = []string{store.RequestPending, store.RequestApproved, store.RequestDenied, store.RequestClaimed, "lapsed"}

// requestView is a token request as the API shows it. The requester is
// who will hold the secret (only they may claim it), so the approver sees
// whom they are trusting, whatever owner the request names.
func requestView(q *store.Request, now time.Time) api.RequestView {
	return api.RequestView{
		ID: q.ID, Status: manage.Status(q, now), Owner: q.Owner, Purpose: q.Purpose,
		Scopes: nonNil(q.Scopes), Services: nonNil(q.Services), CIDRs: nonNil(q.CIDRs), TTL: q.TTL.String(),
		MaxUses: q.MaxUses, RateLimit: ratelimit.Format(q.RateLimit), RequestedBy: q.RequestedBy, HeldBy: q.RequestedBy, Ticket: q.Ticket,
		CreatedAt: q.CreatedAt, DecidedBy: q.DecidedBy,
		DecidedAt: timePtr(q.DecidedAt), Reason: q.Reason, ClaimBy: timePtr(q.ClaimBy), TokenID: q.TokenID,
	}
}

func createRequest(c caller, w http.ResponseWriter, r *http.Request) error {
	var spec api.TokenSpec
	if err := decodeBody(r, &spec); err != nil {
		return err
	}
	req, secret, tok, err := c.app.manage.Request(r.Context(), c.principal, lifecycle.Spec(spec))
	if err != nil {
		return err
	}
	now := c.app.now()
	out := api.RequestOutcome{Request: requestView(req, now)}
	if secret == "" {
		writeJSON(w, http.StatusAccepted, out)
		return nil
	}
	view := viewOf(tok, now)
	out.Secret, out.Token = secret, &view
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func listRequests(c caller, w http.ResponseWriter, r *http.Request) error {
	// "state", as for tokens and in the CLI; "status" is the older name,
	// still read for one release.
	q := r.URL.Query()
	state := cmpOr(q.Get("state"), q.Get("status"))
	if state != "" && !slices.Contains(requestStates, state) {
		return &lifecycle.Error{Kind: lifecycle.KindInvalid, Code: "state_invalid", Msg: "state is one of " + strings.Join(requestStates, ", ")}
	}
	reqs, err := c.app.manage.ListRequests(r.Context(), c.principal, state)
	if err != nil {
		return err
	}
	if reqs, err = page(w, r, reqs, func(q *store.Request) string { return q.ID }); err != nil {
		return err
	}
	now := c.app.now()
	out := make([]api.RequestView, 0, len(reqs))
	for _, q := range reqs {
		out = append(out, requestView(q, now))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func showRequest(c caller, w http.ResponseWriter, r *http.Request) error {
	q, err := c.app.manage.GetRequest(r.Context(), c.principal, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, requestView(q, c.app.now()))
	return nil
}

func decideRequest(approve bool) routeFunc {
	return func(c caller, w http.ResponseWriter, r *http.Request) error {
		var body api.ReasonBody
		if err := decodeBody(r, &body); err != nil {
			return err
		}
		decide := c.app.manage.Deny
		if approve {
			decide = c.app.manage.Approve
		}
		q, err := decide(r.Context(), c.principal, r.PathValue("id"), body.Reason)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, api.RequestOutcome{Request: requestView(q, c.app.now())})
		return nil
	}
}

func claimRequest(c caller, w http.ResponseWriter, r *http.Request) error {
	q, secret, tok, err := c.app.manage.Claim(r.Context(), c.principal, r.PathValue("id"))
	if err != nil {
		return err
	}
	now := c.app.now()
	view := viewOf(tok, now)
	writeJSON(w, http.StatusCreated, api.RequestOutcome{Request: requestView(q, now), Secret: secret, Token: &view})
	return nil
}

// reportView is the hygiene report as the API shows it.
func reportView(r report.Report) api.Report {
	items := func(in []report.Item) []api.ReportItem {
		out := make([]api.ReportItem, 0, len(in))
		for _, it := range in {
			out = append(out, api.ReportItem(it))
		}
		return out
	}
	return api.Report{GeneratedAt: r.GeneratedAt, LiveTokens: r.LiveTokens, ExpiringSoon: items(r.ExpiringSoon),
		NeverUsed: items(r.NeverUsed), Unused: items(r.Unused), WriteWithoutCIDR: items(r.WriteWithoutCIDR),
		LongLived: items(r.LongLived), UnusedScopes: items(r.UnusedScopes), Exposed: items(r.Exposed)}
}

func cmpOr(v, fallback string) string {
	if v == "" {
		return fallback
	}
	return v
}
