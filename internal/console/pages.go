package console

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/stepup"
	"github.com/tokengate/caddy-tokengate/internal/websession"
	"github.com/tokengate/caddy-tokengate/store"
)

// redirectURL is where the provider sends the browser back: the callback
// on the host the browser used, so a console reached through any node or
// name keeps its cookies.
func redirectURL(r *http.Request) string {
	scheme := "https"
	if !websession.Secure(r) {
		scheme = "http"
	}
	return scheme + "://" + r.Host + websession.CallbackPath
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	s := websession.BeginSignIn(w, r)
	http.Redirect(w, r, c.cfg.Identity.AuthCodeURL(redirectURL(r), s.State, s.Nonce, s.Challenge), http.StatusSeeOther)
}

func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	attempt, err := websession.FinishSignIn(w, r)
	if err != nil {
		c.fail(w, r, nil, http.StatusBadRequest, reason.SigninStateInvalid, err.Error())
		return
	}
	if e := r.URL.Query().Get("error"); e != "" {
		c.fail(w, r, nil, http.StatusUnauthorized, reason.SigninRefused, "The identity provider did not sign you in ("+oneLine(e)+").")
		return
	}
	person, err := c.cfg.Identity.Exchange(r.Context(), redirectURL(r), r.URL.Query().Get("code"), attempt.Verifier)
	if err != nil {
		var rf interface{ Forbidden() bool }
		if errors.As(err, &rf) && rf.Forbidden() {
			c.fail(w, r, nil, http.StatusForbidden, reason.SigninNotAllowed, "Your identity provider account may not use this console.")
			return
		}
		c.fail(w, r, nil, http.StatusUnauthorized, reason.SigninFailed, "Signing in did not complete; start again.")
		return
	}
	if person.Nonce != attempt.Nonce {
		c.fail(w, r, nil, http.StatusUnauthorized, reason.SigninFailed, "The identity provider's answer was not for this sign-in; start again.")
		return
	}
	if _, err := c.cfg.Sessions.Start(r.Context(), w, r, person.Principal, person.Groups); err != nil {
		c.fail(w, r, nil, http.StatusServiceUnavailable, reason.StoreUnavailable, "Your session could not be saved; try again in a moment.")
		return
	}
	// Not a redirect: this response ends a navigation the provider's
	// site started, and a browser still counts a redirect from here as
	// cross-site, so the SameSite=Strict session cookie just set would not
	// go with it. The page's own refresh is a navigation from this site.
	c.render(w, r, nil, "signedin", nil)
}

// oneLine keeps a provider's error code short and printable.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

func (c *Console) logout(v *visit, w http.ResponseWriter, r *http.Request) {
	if err := c.cfg.Sessions.End(r.Context(), w, r); err != nil {
		c.fail(w, r, v, http.StatusServiceUnavailable, reason.StoreUnavailable, "Signing out did not reach the store; try again.")
		return
	}
	c.render(w, r, nil, "signedout", nil)
}

// inbox lists the pending requests the viewer may decide: never their
// own. The admin policy judges each decision again when it is made.
func (c *Console) inbox(v *visit, w http.ResponseWriter, r *http.Request) {
	pending, err := c.cfg.Actions.ListRequests(r.Context(), v.actor, store.RequestPending)
	if err != nil {
		c.refused(w, r, v, err)
		return
	}
	others := slices.DeleteFunc(pending, func(q *store.Request) bool { return q.RequestedBy == v.actor.Name })
	page, err := c.decidable(v, r, others, r.URL.Query().Get("after"))
	if err != nil {
		c.refused(w, r, v, err)
		return
	}
	c.render(w, r, v, "inbox", map[string]any{"Requests": page, "Now": c.cfg.Now()})
}

// maxInboxChecks bounds the policy questions one inbox page asks, so a
// long run of requests the viewer may not decide costs a "next" link,
// not a slow page.
const maxInboxChecks = 1000

// decidable pages through reqs (oldest first) after the cursor, keeping
// those the admin policy lets the viewer decide; Total counts them all,
// decidable or not.
func (c *Console) decidable(v *visit, r *http.Request, reqs []*store.Request, after string) (Page[*store.Request], error) {
	start := 0
	if after != "" {
		start = len(reqs)
		for i, q := range reqs {
			if q.ID == after {
				start = i + 1
				break
			}
		}
	}
	p := Page[*store.Request]{Total: len(reqs)}
	checks := 0
	for i := start; i < len(reqs); i++ {
		if len(p.Items) == pageSize || checks == maxInboxChecks {
			p.Next = reqs[i-1].ID
			break
		}
		checks++
		ok, err := c.cfg.Actions.MayDecide(r.Context(), v.actor, reqs[i])
		if err != nil {
			return p, err
		}
		if ok {
			p.Items = append(p.Items, reqs[i])
		}
	}
	return p, nil
}

func (c *Console) requestPage(v *visit, w http.ResponseWriter, r *http.Request) {
	req, err := c.cfg.Actions.GetRequest(r.Context(), v.actor, r.PathValue("id"))
	if err != nil {
		c.refused(w, r, v, err)
		return
	}
	now := c.cfg.Now()
	all, err := c.cfg.Actions.ListRequests(r.Context(), v.actor, "")
	if err != nil {
		c.refused(w, r, v, err)
		return
	}
	held, err := c.heldBy(v, r, req.RequestedBy)
	if err != nil {
		c.refused(w, r, v, err)
		return
	}
	why, err := c.cfg.Actions.ExplainApproval(r.Context(), v.actor, req)
	if err != nil {
		c.refused(w, r, v, err)
		return
	}
	c.render(w, r, v, "request", map[string]any{
		"Request":     req,
		"Why":         why,
		"Own":         req.RequestedBy == v.actor.Name,
		"Decidable":   req.Status == store.RequestPending && req.RequestedBy != v.actor.Name,
		"Claimable":   req.Status == store.RequestApproved && req.RequestedBy == v.actor.Name,
		"NeedsStepUp": req.Status == store.RequestPending && c.stepUpNeeded(v, r, req),
		"Change":      AccessChange(req, held, now),
		"History":     RecentHistory(req.RequestedBy, req.ID, all, held, now),
		"Now":         now,
	})
}

// heldBy lists the tokens principal holds.
func (c *Console) heldBy(v *visit, r *http.Request, principal string) ([]*store.Token, error) {
	all, err := c.cfg.Actions.ListTokens(r.Context(), v.actor, store.Filter{}, "")
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(t *store.Token) bool { return t.HeldBy != principal }), nil
}

// decide approves or denies, with the reason the form requires; an
// approval that needs a step-up carries a security key's assertion bound
// to this request.
func (c *Console) decide(v *visit, w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	why := strings.TrimSpace(r.PostFormValue("reason"))
	if why == "" {
		c.fail(w, r, v, http.StatusBadRequest, reason.ReasonRequired, "Say why: a decision needs a reason, which the requester and the audit trail will read. Nothing was decided.")
		return
	}
	var err error
	switch r.PostFormValue("decision") {
	case "approve":
		stepped, ok := c.stepUpForApproval(v, w, r, id)
		if !ok {
			return
		}
		actor := v.actor
		actor.StepUp = stepped
		_, err = c.cfg.Actions.Approve(r.Context(), actor, id, why)
	case "deny":
		_, err = c.cfg.Actions.Deny(r.Context(), v.actor, id, why)
	default:
		c.fail(w, r, v, http.StatusBadRequest, reason.DecisionInvalid, "Choose approve or deny.")
		return
	}
	if err != nil {
		c.refused(w, r, v, err)
		return
	}
	http.Redirect(w, r, "/console/requests/"+url.PathEscape(id), http.StatusSeeOther)
}

// stepUpForApproval checks, when approving id needs a step-up, the
// assertion the form carries, and reports whether one verified (the admin
// policy then sees input.actor.step_up). It answers the request itself and
// returns ok false when the approval may not go on.
func (c *Console) stepUpForApproval(v *visit, w http.ResponseWriter, r *http.Request, id string) (stepped, ok bool) {
	req, err := c.cfg.Actions.GetRequest(r.Context(), v.actor, id)
	if err != nil {
		c.refused(w, r, v, err)
		return false, false
	}
	if !c.stepUpNeeded(v, r, req) {
		return false, true
	}
	steps := c.stepUp(r)
	if steps == nil {
		c.fail(w, r, v, http.StatusForbidden, reason.StepUpRequired, "Approving this request needs a security key, and security keys are not set up on this gateway.")
		return false, false
	}
	assertion := r.PostFormValue("assertion")
	if assertion == "" {
		c.fail(w, r, v, http.StatusForbidden, reason.StepUpRequired, "Approving a write to a production service needs your security key. Use the Approve button on the request's page with JavaScript on.")
		return false, false
	}
	if err := steps.FinishAssertion(r.Context(), v.actor.Name, stepup.Approval(v.session.IDHash, req), []byte(assertion)); err != nil {
		var rf *stepup.Refusal
		if errors.As(err, &rf) {
			c.fail(w, r, v, http.StatusForbidden, rf.Reason, rf.Detail+". Nothing was approved.")
			return false, false
		}
		c.fail(w, r, v, http.StatusServiceUnavailable, reason.StoreUnavailable, "The security key could not be checked right now; nothing was approved.")
		return false, false
	}
	return true, true
}

// stepUpNeeded asks the policy whether v's approval of req needs a
// security key; when it cannot tell, it asks for one (the approval itself
// is judged again, so asking too often costs a touch, never a hole).
func (c *Console) stepUpNeeded(v *visit, r *http.Request, req *store.Request) bool {
	need, err := c.cfg.Actions.StepUpNeeded(r.Context(), v.actor, req)
	return need || err != nil
}

// beginApprovalStepUp answers the page's script with the WebAuthn options
// for approving this request (JSON).
func (c *Console) beginApprovalStepUp(v *visit, w http.ResponseWriter, r *http.Request) {
	steps := c.stepUp(r)
	if steps == nil {
		jsonError(w, http.StatusNotFound, reason.StepUpUnavailable, "security keys are not set up on this gateway")
		return
	}
	req, err := c.cfg.Actions.GetRequest(r.Context(), v.actor, r.PathValue("id"))
	if err != nil {
		jsonError(w, http.StatusNotFound, reason.RequestNotFound, "no such request")
		return
	}
	opts, err := steps.BeginAssertion(r.Context(), v.actor.Name, stepup.Approval(v.session.IDHash, req))
	if errors.Is(err, stepup.ErrNoKeys) {
		jsonError(w, http.StatusConflict, reason.NoSecurityKey, "register a security key first (Security keys, in the menu)")
		return
	}
	if err != nil {
		jsonError(w, http.StatusServiceUnavailable, reason.StoreUnavailable, "try again in a moment")
		return
	}
	writeJSON(w, opts)
}

func (c *Console) claim(v *visit, w http.ResponseWriter, r *http.Request) {
	_, secret, tok, err := c.cfg.Actions.Claim(r.Context(), v.actor, r.PathValue("id"))
	if err != nil {
		c.refused(w, r, v, err)
		return
	}
	c.render(w, r, v, "secret", map[string]any{"Secret": secret, "Token": tok, "What": "claimed"})
}

func (c *Console) mine(v *visit, w http.ResponseWriter, r *http.Request) {
	all, err := c.cfg.Actions.ListRequests(r.Context(), v.actor, "")
	if err != nil {
		c.refused(w, r, v, err)
		return
	}
	own := slices.DeleteFunc(all, func(q *store.Request) bool { return q.RequestedBy != v.actor.Name })
	slices.Reverse(own)
	c.render(w, r, v, "mine", map[string]any{"Requests": own, "Now": c.cfg.Now()})
}

// ask files a request with the same fields and policy as the API's.
func (c *Console) ask(v *visit, w http.ResponseWriter, r *http.Request) {
	spec := lifecycle.Spec{
		Owner:    strings.TrimSpace(r.PostFormValue("owner")),
		Purpose:  strings.TrimSpace(r.PostFormValue("purpose")),
		Scopes:   fields(r.PostFormValue("scopes")),
		Services: fields(r.PostFormValue("services")),
		CIDRs:    fields(r.PostFormValue("cidrs")),
		TTL:      strings.TrimSpace(r.PostFormValue("ttl")),
		Ticket:   strings.TrimSpace(r.PostFormValue("ticket")),
	}
	if uses := strings.TrimSpace(r.PostFormValue("max_uses")); uses != "" {
		n, err := strconv.ParseInt(uses, 10, 64)
		if err != nil || n < 0 {
			c.fail(w, r, v, http.StatusBadRequest, reason.MaxUsesInvalid, "Use limit: a whole number, 0 for none.")
			return
		}
		spec.MaxUses = n
	}
	req, secret, tok, err := c.cfg.Actions.Request(r.Context(), v.actor, spec)
	if err != nil {
		c.refused(w, r, v, err)
		return
	}
	if secret != "" {
		c.render(w, r, v, "secret", map[string]any{"Secret": secret, "Token": tok, "What": "approved at once by the policy and issued"})
		return
	}
	http.Redirect(w, r, "/console/requests/"+url.PathEscape(req.ID), http.StatusSeeOther)
}

// fields splits a form field on commas and white space.
func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

var tokenStates = []string{store.StateActive, store.StatePending, store.StateRotating, store.StateRotated, store.StateExpired, store.StateExhausted, store.StateRevoked}

func (c *Console) tokens(v *visit, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state != "" && !slices.Contains(tokenStates, state) {
		c.fail(w, r, v, http.StatusBadRequest, reason.StateInvalid, "State must be one of: "+strings.Join(tokenStates, ", ")+".")
		return
	}
	all, err := c.cfg.Actions.ListTokens(r.Context(), v.actor, store.Filter{Owner: q.Get("owner"), Service: q.Get("service")}, state)
	if err != nil {
		c.refused(w, r, v, err)
		return
	}
	if holder := q.Get("holder"); holder != "" {
		all = slices.DeleteFunc(all, func(t *store.Token) bool { return t.HeldBy != holder })
	}
	page := Paginate(all, func(t *store.Token) string { return t.ID }, q.Get("after"), pageSize)
	c.render(w, r, v, "tokens", map[string]any{
		"Tokens": page, "States": tokenStates, "Now": c.cfg.Now(),
		"Owner": q.Get("owner"), "Holder": q.Get("holder"), "Service": q.Get("service"), "State": state,
	})
}

func (c *Console) tokenPage(v *visit, w http.ResponseWriter, r *http.Request) {
	t, err := c.cfg.Actions.GetToken(r.Context(), v.actor, r.PathValue("id"))
	if err != nil {
		c.refused(w, r, v, err)
		return
	}
	now := c.cfg.Now()
	c.render(w, r, v, "token", map[string]any{"Token": t, "Now": now, "Live": store.StateOf(t, now) == store.StateActive || store.StateOf(t, now) == store.StatePending})
}

func (c *Console) revoke(v *visit, w http.ResponseWriter, r *http.Request) {
	why := strings.TrimSpace(r.PostFormValue("reason"))
	if why == "" {
		c.fail(w, r, v, http.StatusBadRequest, reason.ReasonRequired, "Say why the token is revoked; nothing was revoked.")
		return
	}
	id := r.PathValue("id")
	if _, err := c.cfg.Actions.Revoke(r.Context(), v.actor, id, why); err != nil {
		c.refused(w, r, v, err)
		return
	}
	http.Redirect(w, r, "/console/tokens/"+url.PathEscape(id), http.StatusSeeOther)
}

func (c *Console) rotate(v *visit, w http.ResponseWriter, r *http.Request) {
	why := strings.TrimSpace(r.PostFormValue("reason"))
	if why == "" {
		c.fail(w, r, v, http.StatusBadRequest, reason.ReasonRequired, "Say why the token is rotated; nothing was rotated.")
		return
	}
	grace, err := time.ParseDuration(strings.TrimSpace(r.PostFormValue("grace")))
	if err != nil || grace < 0 {
		c.fail(w, r, v, http.StatusBadRequest, reason.GraceInvalid, "Grace: how long the old secret keeps working, as 0s, 10m or 1h.")
		return
	}
	secret, tok, err := c.cfg.Actions.RotateBecause(r.Context(), v.actor, r.PathValue("id"), grace, why)
	if err != nil {
		c.refused(w, r, v, err)
		return
	}
	c.render(w, r, v, "secret", map[string]any{"Secret": secret, "Token": tok, "What": "rotated"})
}

func (c *Console) reportPage(v *visit, w http.ResponseWriter, r *http.Request) {
	rep, err := c.cfg.Actions.Report(r.Context(), v.actor, 30*24*time.Hour)
	if err != nil {
		c.refused(w, r, v, err)
		return
	}
	c.render(w, r, v, "report", map[string]any{"Report": rep})
}

func (c *Console) keys(v *visit, w http.ResponseWriter, r *http.Request) {
	steps := c.stepUp(r)
	if steps == nil {
		c.fail(w, r, v, http.StatusNotFound, reason.StepUpUnavailable, "Security keys are not set up on this gateway.")
		return
	}
	keys, err := steps.Keys(r.Context(), v.actor.Name)
	if err != nil {
		c.fail(w, r, v, http.StatusServiceUnavailable, reason.StoreUnavailable, "Your keys could not be read right now.")
		return
	}
	c.render(w, r, v, "keys", map[string]any{"Keys": keys})
}

func (c *Console) beginKey(v *visit, w http.ResponseWriter, r *http.Request) {
	steps := c.stepUp(r)
	if steps == nil {
		jsonError(w, http.StatusNotFound, reason.StepUpUnavailable, "security keys are not set up on this gateway")
		return
	}
	opts, err := steps.BeginRegistration(r.Context(), v.actor.Name, v.actor.Name, v.session.IDHash)
	if err != nil {
		jsonError(w, http.StatusServiceUnavailable, reason.StoreUnavailable, "try again in a moment")
		return
	}
	writeJSON(w, opts)
}

// maxCeremony bounds a WebAuthn response read from the page.
const maxCeremony = 64 << 10

func (c *Console) finishKey(v *visit, w http.ResponseWriter, r *http.Request) {
	steps := c.stepUp(r)
	if steps == nil {
		jsonError(w, http.StatusNotFound, reason.StepUpUnavailable, "security keys are not set up on this gateway")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCeremony))
	if err != nil {
		jsonError(w, http.StatusRequestEntityTooLarge, reason.BodyTooLarge, "the key's answer is larger than any key gives")
		return
	}
	name := strings.TrimSpace(r.URL.Query().Get("name"))
	if name == "" {
		name = "security key"
	}
	k, err := steps.FinishRegistration(r.Context(), v.actor.Name, v.actor.Name, name, v.session.IDHash, body)
	var rf *stepup.Refusal
	switch {
	case errors.As(err, &rf):
		jsonError(w, http.StatusBadRequest, rf.Reason, rf.Detail)
	case err != nil:
		jsonError(w, http.StatusServiceUnavailable, reason.StoreUnavailable, "try again in a moment")
	default:
		writeJSON(w, []byte(`{"registered":`+strconv.Quote(k.Name)+`}`))
	}
}

func (c *Console) deleteKey(v *visit, w http.ResponseWriter, r *http.Request) {
	steps := c.stepUp(r)
	if steps == nil {
		c.fail(w, r, v, http.StatusNotFound, reason.StepUpUnavailable, "Security keys are not set up on this gateway.")
		return
	}
	if err := steps.RemoveKey(r.Context(), v.actor.Name, r.PostFormValue("credential")); err != nil {
		c.fail(w, r, v, http.StatusNotFound, reason.KeyNotFound, "You have no such key.")
		return
	}
	http.Redirect(w, r, "/console/keys", http.StatusSeeOther)
}

func writeJSON(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

func jsonError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": code, "detail": msg})
}
