package mgmtapi

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"github.com/tokengate/caddy-tokengate/internal/ratelimit"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/report"
	"github.com/tokengate/caddy-tokengate/store"
)

// The routes served on both endpoints (tokens, report, check) and the
// two-person flow of the management API. Each one acts as the call's
// actor through manage.Service, which asks the admin policy.

func listTokens(c *call, w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	state := q.Get("state")
	if state != "" && !slices.Contains(store.States, state) {
		return &lifecycle.Error{Class: lifecycle.KindInvalid, Code: reason.StateInvalid, Detail: "state is one of " + strings.Join(store.States, ", ")}
	}
	toks, err := c.node.Manage.ListTokens(r.Context(), c.actor, store.Filter{Owner: q.Get("owner"), Service: q.Get("service")}, state)
	if err != nil {
		return err
	}
	toks, err = page(w, r, toks, func(t *store.Token) string { return t.ID })
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, viewsOf(toks, c.node.Now()))
	return nil
}

// Lists are paged: at most limit items (default ListLimit, at most
// MaxListLimit), in id order, and while more follow, a Link header
// (RFC 8288, rel="next") whose URL carries the opaque cursor. The body
// stays a plain array, so clients written before paging still read it.
const (
	ListLimit    = 100
	MaxListLimit = 1000
)

// page cuts the page that r's limit and cursor select out of items and
// sets the Link to the next one. The cursor is the last id of the page
// before, encoded so that clients treat it as opaque.
func page[T any](w http.ResponseWriter, r *http.Request, items []T, id func(T) string) ([]T, error) {
	q := r.URL.Query()
	limit := ListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListLimit {
			return nil, &lifecycle.Error{Class: lifecycle.KindInvalid, Code: reason.LimitInvalid, Detail: "limit is a whole number from 1 to " + strconv.Itoa(MaxListLimit)}
		}
		limit = n
	}
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(id(a), id(b)) })
	if v := q.Get("cursor"); v != "" {
		after, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(after) == 0 {
			return nil, &lifecycle.Error{Class: lifecycle.KindInvalid, Code: reason.CursorInvalid, Detail: "cursor is not one this API gave out"}
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

func showToken(c *call, w http.ResponseWriter, r *http.Request) error {
	tok, err := c.node.Manage.GetToken(r.Context(), c.actor, r.PathValue("id"))
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, viewOf(tok, c.node.Now()))
	return nil
}

func revokeToken(c *call, w http.ResponseWriter, r *http.Request) error {
	var body api.ReasonBody
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	tok, err := c.node.Manage.Revoke(r.Context(), c.actor, r.PathValue("id"), body.Reason)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, viewOf(tok, c.node.Now()))
	return nil
}

func rotateToken(c *call, w http.ResponseWriter, r *http.Request) error {
	var body api.RotateBody
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	grace := lifecycle.DefaultGrace
	if body.Grace != "" {
		var err error
		if grace, err = c.node.ParseDuration(body.Grace); err != nil {
			return &lifecycle.Error{Class: lifecycle.KindInvalid, Code: reason.GraceInvalid, Detail: "grace is not a duration such as 10m or 1d"}
		}
	}
	secret, tok, err := c.node.Manage.Rotate(r.Context(), c.actor, r.PathValue("id"), grace)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusCreated, api.IssuedToken{Secret: secret, Token: viewOf(tok, c.node.Now())})
	return nil
}

func hygieneReport(c *call, w http.ResponseWriter, r *http.Request) error {
	unused := report.DefaultUnused
	if v := r.URL.Query().Get("unused_days"); v != "" {
		days, err := strconv.Atoi(v)
		if err != nil || days < 1 || days > 3650 {
			return &lifecycle.Error{Class: lifecycle.KindInvalid, Code: reason.UnusedDaysInvalid, Detail: "unused_days is a whole number of days from 1 to 3650"}
		}
		unused = time.Duration(days) * 24 * time.Hour
	}
	rep, err := c.node.Manage.Report(r.Context(), c.actor, unused)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, reportView(rep))
	return nil
}

func checkDecision(c *call, w http.ResponseWriter, r *http.Request) error {
	var body api.CheckRequest
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.TokenID == "" || body.Service == "" {
		return &lifecycle.Error{Class: lifecycle.KindInvalid, Code: reason.CheckInvalid, Detail: "token_id and service are required"}
	}
	// The path is read as the gateway reads a request's: cleaned as
	// Caddy's matchers clean it, refused where the readings could differ,
	// so a dry run never answers otherwise than the data plane.
	u, err := url.ParseRequestURI(cmp.Or(body.Path, "/"))
	if err != nil || u.RawQuery != "" || u.Fragment != "" {
		return &lifecycle.Error{Class: lifecycle.KindInvalid, Code: reason.PathInvalid, Detail: "path must be an absolute path without query"}
	}
	rawPath := u.EscapedPath()
	path, _, ok := c.host.CleanPath(u.Path, rawPath)
	if !ok {
		return &lifecycle.Error{Class: lifecycle.KindInvalid, Code: reason.PathInvalid, Detail: "the gateway refuses this path (400 path_invalid)"}
	}
	req := policy.Request{Method: cmp.Or(body.Method, http.MethodGet), Host: body.Host, Path: path, RawPath: rawPath, RemoteIP: body.IP}
	d, input, err := c.node.Manage.CheckInput(r.Context(), c.actor, body.TokenID, req, body.Service)
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
	WriteJSON(w, http.StatusOK, res)
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

func createRequest(c *call, w http.ResponseWriter, r *http.Request) error {
	var spec api.TokenSpec
	if err := decodeBody(r, &spec); err != nil {
		return err
	}
	req, secret, tok, err := c.node.Manage.Request(r.Context(), c.actor, lifecycle.Spec(spec))
	if err != nil {
		return err
	}
	now := c.node.Now()
	out := api.RequestOutcome{Request: requestView(req, now)}
	if secret == "" {
		WriteJSON(w, http.StatusAccepted, out)
		return nil
	}
	view := viewOf(tok, now)
	out.Secret, out.Token = secret, &view
	WriteJSON(w, http.StatusCreated, out)
	return nil
}

func listRequests(c *call, w http.ResponseWriter, r *http.Request) error {
	// "state", as for tokens and in the CLI; "status" is the older name,
	// still read for one release.
	q := r.URL.Query()
	state := cmp.Or(q.Get("state"), q.Get("status"))
	if state != "" && !slices.Contains(requestStates, state) {
		return &lifecycle.Error{Class: lifecycle.KindInvalid, Code: reason.StateInvalid, Detail: "state is one of " + strings.Join(requestStates, ", ")}
	}
	reqs, err := c.node.Manage.ListRequests(r.Context(), c.actor, state)
	if err != nil {
		return err
	}
	if reqs, err = page(w, r, reqs, func(q *store.Request) string { return q.ID }); err != nil {
		return err
	}
	now := c.node.Now()
	out := make([]api.RequestView, 0, len(reqs))
	for _, q := range reqs {
		out = append(out, requestView(q, now))
	}
	WriteJSON(w, http.StatusOK, out)
	return nil
}

func showRequest(c *call, w http.ResponseWriter, r *http.Request) error {
	q, err := c.node.Manage.GetRequest(r.Context(), c.actor, r.PathValue("id"))
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, requestView(q, c.node.Now()))
	return nil
}

func decideRequest(approve bool) routeFunc {
	return func(c *call, w http.ResponseWriter, r *http.Request) error {
		var body api.ReasonBody
		if err := decodeBody(r, &body); err != nil {
			return err
		}
		decide := c.node.Manage.Deny
		if approve {
			decide = c.node.Manage.Approve
		}
		q, err := decide(r.Context(), c.actor, r.PathValue("id"), body.Reason)
		if err != nil {
			return err
		}
		WriteJSON(w, http.StatusOK, api.RequestOutcome{Request: requestView(q, c.node.Now())})
		return nil
	}
}

func claimRequest(c *call, w http.ResponseWriter, r *http.Request) error {
	q, secret, tok, err := c.node.Manage.Claim(r.Context(), c.actor, r.PathValue("id"))
	if err != nil {
		return err
	}
	now := c.node.Now()
	view := viewOf(tok, now)
	WriteJSON(w, http.StatusCreated, api.RequestOutcome{Request: requestView(q, now), Secret: secret, Token: &view})
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
