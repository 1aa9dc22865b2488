// Package leaks receives secrets found in the wild and revokes them:
// GitHub's secret scanning partner alerts (signed with GitHub's keys),
// reports from any other scanner (a plain list or a gitleaks report, from
// a caller the admin policy lets report), and GitHub's
// secret_scanning_alert webhook (HMAC-signed) for private repositories.
//
// Every reported string is checked offline first (the secret format's
// CRC32): garbage never costs a store lookup. A well-formed secret is
// looked up by hash; when it opens a live token, that token and its
// rotation chain are revoked with reason "leaked" and the exposure kept
// on the record. The secrets themselves never leave this package: answers,
// audit lines and records name token ids.
package leaks

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// Ledger is what the intake needs from the store and the lifecycle.
type Ledger interface {
	// Find returns the token whose secret is secret (a well-formed one),
	// or an error wrapping store.ErrNotFound.
	Find(ctx context.Context, secret string) (*store.Token, error)
	// Expose revokes token id as leaked and writes its lines
	// (manage.Service.Expose): it returns lifecycle.ErrAlreadyExposed or lifecycle.ErrNotLive, having
	// changed nothing, when there is nothing to do.
	Expose(ctx context.Context, actor, id string, e lifecycle.Exposure) (*store.Token, error)
}

// Outcome is what happened to one reported secret.
type Outcome string

const (
	// Exposed: a live token of ours; it is revoked now.
	Exposed Outcome = "exposed"
	// AlreadyExposed: reported before; nothing changed this time.
	AlreadyExposed Outcome = "already_exposed"
	// Inactive: ours, but revoked, expired, rotated or used up already.
	Inactive Outcome = "inactive"
	// Unknown: well-formed, but no token of this gateway.
	Unknown Outcome = "unknown"
	// Malformed: not a tokengate secret (prefix, length or checksum).
	Malformed Outcome = "malformed"
	// Live: a live token of ours, left as it is (a dry run).
	Live Outcome = "live"
)

// Label is GitHub's verdict on an alert: a live token of ours is a true
// positive, anything else a false positive.
func (o Outcome) Label() string {
	if o == Exposed || o == AlreadyExposed || o == Live {
		return "true_positive"
	}
	return "false_positive"
}

// Result is the outcome for one finding. TokenID and State are empty
// unless the secret was ours.
type Result struct {
	Outcome Outcome
	TokenID string
	State   string
}

// Tally counts outcomes, for the audit line of a report.
type Tally map[Outcome]int

// Process handles each finding: checksum, lookup, exposure. A secret
// reported twice in one batch is looked up once. Up to Parallel secrets
// are handled at once, so a batch of a hundred is not a hundred store
// round trips end to end. On a store error it returns that error (the
// caller answers 503); what was exposed before it stays exposed, and a
// retry finds it so.
func Process(ctx context.Context, l Ledger, actor, source string, findings []Finding, now time.Time) ([]Result, Tally, error) {
	return process(ctx, l, actor, source, findings, now, false)
}

// Parallel bounds the secrets of one report handled at once: each holds
// a store connection while its lookup or exposure runs.
const Parallel = 8

// Resolve is Process without the exposure: it says what each finding is
// (Live for a live token of ours) and changes nothing.
func Resolve(ctx context.Context, l Ledger, findings []Finding, now time.Time) ([]Result, Tally, error) {
	return process(ctx, l, "", "", findings, now, true)
}

func process(ctx context.Context, l Ledger, actor, source string, findings []Finding, now time.Time, dryRun bool) ([]Result, Tally, error) {
	// first[i] is the index of the first finding with findings[i]'s
	// secret; only those are handled.
	first := make([]int, len(findings))
	seen := make(map[string]int, len(findings))
	for i, f := range findings {
		j, ok := seen[f.Secret]
		if !ok {
			j, seen[f.Secret] = i, i
		}
		first[i] = j
	}
	results := make([]Result, len(findings))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(Parallel)
	for i, f := range findings {
		if first[i] != i {
			continue
		}
		g.Go(func() error {
			r, err := processOne(gctx, l, actor, source, f, now, dryRun)
			results[i] = r
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	tally := Tally{}
	for i := range findings {
		results[i] = results[first[i]]
		tally[results[i].Outcome]++
	}
	return results, tally, nil
}

func processOne(ctx context.Context, l Ledger, actor, source string, f Finding, now time.Time, dryRun bool) (Result, error) {
	if token.Check(f.Secret) != nil {
		return Result{Outcome: Malformed}, nil
	}
	t, err := l.Find(ctx, f.Secret)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Result{Outcome: Unknown}, nil
	case err != nil:
		return Result{}, err
	}
	switch {
	case !t.ExposedAt.IsZero():
		return Result{Outcome: AlreadyExposed, TokenID: t.ID, State: store.StateExposed}, nil
	case !lifecycle.Live(t, now):
		return Result{Outcome: Inactive, TokenID: t.ID, State: store.StateOf(t, now)}, nil
	case dryRun:
		return Result{Outcome: Live, TokenID: t.ID, State: store.StateOf(t, now)}, nil
	}
	exposed, err := l.Expose(ctx, actor, t.ID, lifecycle.Exposure{Source: source, URL: f.URL})
	switch {
	case errors.Is(err, lifecycle.ErrAlreadyExposed):
		return Result{Outcome: AlreadyExposed, TokenID: t.ID, State: store.StateExposed}, nil
	case errors.Is(err, lifecycle.ErrNotLive):
		return Result{Outcome: Inactive, TokenID: t.ID, State: store.StateOf(t, now)}, nil
	case err != nil:
		return Result{}, err
	}
	return Result{Outcome: Exposed, TokenID: exposed.ID, State: store.StateExposed}, nil
}
