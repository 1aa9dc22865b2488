// Package notify tells webhooks what happened to token requests and
// tokens, so that approvers hear about a pending request without watching
// a list: an event is built from the stored record (never carrying a
// secret or a hash), signed with the webhook's key, and delivered in the
// background with retries.
package notify

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// Event types.
const (
	RequestPending  = "request.pending"  // a request waits for an approver
	RequestApproved = "request.approved" // by a person, or at once by the policy
	RequestDenied   = "request.denied"
	RequestLapsed   = "request.lapsed" // approved, but not claimed in time
	TokenRevoked    = "token.revoked"
	// TokenExposed: a scanner found the token's secret in the wild, and
	// the token was revoked.
	TokenExposed = "token.exposed"
)

// Types lists every event type, for validating a webhook's filter.
var Types = []string{RequestPending, RequestApproved, RequestDenied, RequestLapsed, TokenRevoked, TokenExposed}

// Event is the JSON body sent to a webhook. It names records by their
// public ids and describes them by their metadata; it has no field that
// could hold a secret or a secret's hash.
type Event struct {
	Type string `json:"type"`
	// ID is unique per event and stays the same across delivery
	// attempts: receivers drop events whose id they have seen.
	ID          string    `json:"id"`
	Time        time.Time `json:"time"`
	RequestID   string    `json:"request_id,omitempty"`
	TokenID     string    `json:"token_id,omitempty"`
	Owner       string    `json:"owner"`
	Purpose     string    `json:"purpose,omitempty"`
	RequestedBy string    `json:"requested_by,omitempty"`
	HeldBy      string    `json:"held_by,omitempty"`
	Scopes      []string  `json:"scopes"`
	Services    []string  `json:"services"`
	Ticket      string    `json:"ticket,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	// DecidedBy is who approved, denied or revoked.
	DecidedBy string     `json:"decided_by,omitempty"`
	ClaimBy   *time.Time `json:"claim_by,omitempty"`
	// Source and URL say who found a leaked secret and where
	// (token.exposed).
	Source string `json:"source,omitempty"`
	URL    string `json:"url,omitempty"`
	// Text is a one-line summary, so that a Slack (or compatible)
	// incoming webhook shows the event without a translating relay.
	Text string `json:"text"`
	// Link is the web console's page of the request or token, where a
	// person can act on it; empty when no console address is configured.
	Link string `json:"link,omitempty"`
}

// LinkTo points e at its page in the console served at base, an http or
// https address such as https://gateway.example.com: receivers get Link,
// and the one-line text ends with a Slack link a person can follow.
func (e *Event) LinkTo(base string) {
	base = strings.TrimRight(base, "/")
	switch {
	case base == "":
		return
	case e.RequestID != "" && strings.HasPrefix(e.Type, "request."):
		e.Link = base + "/console/requests/" + url.PathEscape(e.RequestID)
	case e.TokenID != "":
		e.Link = base + "/console/tokens/" + url.PathEscape(e.TokenID)
	default:
		return
	}
	e.Text += " <" + slackEscape(e.Link) + "|Open in the console>"
}

// ConsoleBase checks a console address for LinkTo: http or https, a host,
// nothing after the path, and none of the characters that would break
// out of a Slack link.
func ConsoleBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil ||
		strings.ContainsAny(raw, "|<> \t\n") {
		return "", fmt.Errorf("console address %q: want an http or https address such as https://gateway.example.com", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

// ForRequest describes what just happened to r: one of the request.*
// types.
func ForRequest(typ string, r *store.Request, at time.Time) Event {
	e := Event{
		Type: typ, ID: token.NewPrefixedID("evt_"), Time: at.UTC(),
		RequestID: r.ID, TokenID: r.TokenID, Owner: r.Owner, Purpose: r.Purpose, RequestedBy: r.RequestedBy,
		// Only the requester may claim the secret: they are who will
		// hold it, which is what an approver needs to see.
		HeldBy: r.RequestedBy,
		Scopes: nonNil(r.Scopes), Services: nonNil(r.Services), Ticket: r.Ticket,
	}
	if typ != RequestPending {
		e.Reason, e.DecidedBy = r.Reason, r.DecidedBy
	}
	if typ == RequestApproved || typ == RequestLapsed {
		claimBy := r.ClaimBy.UTC()
		e.ClaimBy = &claimBy
	}
	what := fmt.Sprintf("%s (%s on %s for %s)", r.ID, list(r.Scopes), list(r.Services), r.Owner)
	switch typ {
	case RequestPending:
		e.Text = fmt.Sprintf("%s asks for a token: %s for %s, because %q", r.RequestedBy, what, duration(r.TTL), r.Purpose)
		if r.Ticket != "" {
			e.Text += ", ticket " + r.Ticket
		}
		e.Text += ". It waits for an approver."
	case RequestApproved:
		e.Text = fmt.Sprintf("%s approved %s asked by %s: %q. %s may claim it until %s.",
			r.DecidedBy, what, r.RequestedBy, r.Reason, r.RequestedBy, claimBy(r))
	case RequestDenied:
		e.Text = fmt.Sprintf("%s denied %s asked by %s: %q.", r.DecidedBy, what, r.RequestedBy, r.Reason)
	case RequestLapsed:
		e.Text = fmt.Sprintf("%s lapsed: approved by %s, but %s did not claim it by %s.",
			what, r.DecidedBy, r.RequestedBy, claimBy(r))
	default:
		e.Text = typ + " " + what
	}
	e.Text = slackEscape(e.Text)
	return e
}

// ForToken describes the revocation of t.
func ForToken(typ string, t *store.Token, at time.Time) Event {
	e := Event{
		Type: typ, ID: token.NewPrefixedID("evt_"), Time: at.UTC(),
		TokenID: t.ID, Owner: t.Owner, Purpose: t.Purpose, RequestedBy: t.CreatedBy, HeldBy: t.HeldBy,
		Scopes: nonNil(t.Scopes), Services: nonNil(t.Services),
		Reason: t.RevokeReason, DecidedBy: t.RevokedBy,
	}
	e.Text = slackEscape(fmt.Sprintf("%s revoked token %s (%s on %s for %s): %q.",
		t.RevokedBy, t.ID, list(t.Scopes), list(t.Services), t.Owner, t.RevokeReason))
	if typ == TokenExposed {
		e.Source, e.URL = t.ExposureSource, t.ExposureURL
		e.Text = slackEscape(fmt.Sprintf("The secret of token %s (%s on %s for %s, held by %s) was found in the wild (%s, %s) and the token was revoked.",
			t.ID, list(t.Scopes), list(t.Services), t.Owner, t.HeldBy, t.ExposureSource, t.ExposureURL))
	}
	return e
}

func claimBy(r *store.Request) string { return r.ClaimBy.UTC().Format("2006-01-02 15:04 MST") }

// duration writes 2h rather than 2h0m0s.
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

// slackEscape escapes the three characters Slack reads as markup, so a
// purpose or reason cannot ping a channel (<!channel>) or forge a link.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
