package manage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/breakglass"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/store"
)

// The action trail: every management action line (audit.Action) is
// written by record below, and by nothing else. The actions of this
// package, what lifecycle changed (it returns what it did and never logs),
// the token exchange, the local operator's backup and break glass, and
// every attempt at the leak intake go through it, so which lines an action
// writes, with which fields and in which order, is decided in this
// package alone. A test (trail_test.go) keeps every other package from
// building or writing action lines.

// record writes a with the request ids ctx carries.
func (s *Service) record(ctx context.Context, a *audit.Action) {
	s.Audit.ActionContext(ctx, a)
}

// refused writes the line of p's action refused with a *lifecycle.Error.
// Technical failures write none: they go to the operator's log, not the
// audit trail. The ids come from URL paths, so only id-shaped ones are
// written.
func (s *Service) refused(ctx context.Context, msg string, p Principal, requestID, tokenID string, err error) {
	var e *lifecycle.Error
	if !errors.As(err, &e) {
		return
	}
	s.record(ctx, &audit.Action{Msg: msg, Actor: p.Name, TokenRequestID: lifecycle.SafeID(requestID), TokenID: lifecycle.SafeID(tokenID),
		Reason: e.Detail, Outcome: "refused", Reasons: e.AllReasons()})
}

// refusedOn is refused for an action on the stored token t: the line also
// names its owner, holder, scopes and services, so the trail shows whose
// token someone tried to act on.
func (s *Service) refusedOn(ctx context.Context, msg string, p Principal, t *store.Token, err error) {
	var e *lifecycle.Error
	if !errors.As(err, &e) {
		return
	}
	s.record(ctx, withToken(&audit.Action{Msg: msg, Actor: p.Name, TokenID: t.ID,
		Reason: e.Detail, Outcome: "refused", Reasons: e.AllReasons()}, t))
}

// withToken fills in a's fields about t, the token the action made or
// acted on. held_by is the token's recorded holder; a token stored before
// holders were recorded has none, and the line says nothing rather than
// guess.
func withToken(a *audit.Action, t *store.Token) *audit.Action {
	a.Owner, a.HeldBy, a.Scopes, a.Services = t.Owner, t.HeldBy, t.Scopes, t.Services
	start := t.CreatedAt
	if t.NotBefore.After(start) {
		start = t.NotBefore
	}
	if !start.IsZero() && t.ExpiresAt.After(start) {
		a.TTL = t.ExpiresAt.Sub(start)
	}
	return a
}

// withRequest fills in a's fields about the request r.
func withRequest(a *audit.Action, r *store.Request) *audit.Action {
	a.Owner, a.HeldBy, a.Scopes, a.Services, a.TTL = r.Owner, r.RequestedBy, r.Scopes, r.Services, r.TTL
	return a
}

// stopped writes the lines of tokens revoked together: msg (token.revoked
// or token.exposed) for the token named, listing every token stopped
// (revoked_ids), then a token.revoked line for each other token of its
// rotation chain.
func (s *Service) stopped(ctx context.Context, msg, actor, id, why string, named *store.Token, changed []*store.Token) {
	ids := make([]string, len(changed))
	for i, t := range changed {
		ids[i] = t.ID
	}
	line := withToken(&audit.Action{Msg: msg, Actor: actor, TokenID: id, Reason: why, Outcome: "success"}, named)
	line.RevokedIDs = ids
	s.record(ctx, line)
	for _, t := range changed {
		if t.ID != id {
			s.record(ctx, withToken(&audit.Action{Msg: "token.revoked", Actor: actor, TokenID: t.ID, Reason: t.RevokeReason, Outcome: "success"}, t))
		}
	}
}

// rotated writes the token.rotated line of a rotation of token id; stated
// is the reason the person gave, if any.
func (s *Service) rotated(ctx context.Context, p Principal, id, stated string, r lifecycle.Rotation) {
	why := "successor " + r.Next.ID + ", grace until " + r.GraceUntil.Format(time.RFC3339)
	if stated != "" {
		why = stated + " (" + why + ")"
	}
	a := withToken(&audit.Action{Msg: "token.rotated", Actor: p.Name, TokenID: id, Reason: why, Outcome: "success"}, r.Next)
	a.SuccessorID = r.Next.ID
	s.record(ctx, a)
}

// BackupTaken writes the store.backup line: p is about to receive a copy
// of the store, every token's hash in it.
func (s *Service) BackupTaken(ctx context.Context, p Principal) {
	s.record(ctx, &audit.Action{Msg: "store.backup", Actor: p.Name, Outcome: "success"})
}

// BreakGlassStarted writes the break_glass.started line of rec, the
// recovery p started: it names the two people and when it can be
// confirmed, so the line can alert someone during the delay.
func (s *Service) BreakGlassStarted(ctx context.Context, p Principal, rec breakglass.Recovery) {
	s.record(ctx, &audit.Action{Msg: "break_glass.started", Actor: p.Name, Outcome: "success",
		Reason: fmt.Sprintf("%s: new management tokens for %s (request) and %s (approve), confirmable from %s: %s",
			rec.ID, rec.Requester, rec.Approver, rec.NotBefore.UTC().Format(time.RFC3339), rec.Reason)})
}

// BreakGlassStartRefused writes the line of a break-glass start refused
// with err, and returns err.
func (s *Service) BreakGlassStartRefused(ctx context.Context, p Principal, err error) error {
	s.refused(ctx, "break_glass.started", p, "", "", err)
	return err
}

// BreakGlassConfirmRefused writes the line of a break-glass confirmation
// refused with err, and returns err.
func (s *Service) BreakGlassConfirmRefused(ctx context.Context, p Principal, err error) error {
	s.refused(ctx, "break_glass.confirmed", p, "", "", err)
	return err
}

// LeakReported writes the leak.reported line of an intake attempt that
// was taken in: summary says what it found (counts, never a secret).
func (s *Service) LeakReported(ctx context.Context, actor, clientIP, summary string) {
	s.record(ctx, &audit.Action{Msg: "leak.reported", Actor: actor, Outcome: "success", Reason: summary, ClientIP: clientIP})
}

// LeakRefused writes the leak.reported line of intake attempts refused
// with r. refused counts the attempts the line stands for, as addrlimit
// counts them: 1 on the one line of a throttled attempt, the count on a
// brake's summary, 0 (left out) for other refusals.
func (s *Service) LeakRefused(ctx context.Context, actor, clientIP string, r *reason.Refusal, refused int) {
	s.record(ctx, &audit.Action{Msg: "leak.reported", Actor: actor, Outcome: "refused",
		Reasons: []string{r.Code}, Reason: r.Detail, ClientIP: clientIP, RefusedCount: refused})
}
