// Package gateway decides, for one HTTP call, whether its token lets it
// through. Authorize is the whole request path, top to bottom:
//
//	offline format check -> lookup by hash (unknown hashes remembered)
//	-> liveness, in Go -> policy decision (cached)
//	-> rate limit (the stricter of the token's and the policy's; counted
//	   in memory, shared through the store: internal/ratelimit)
//	-> consume a use when the token is use-limited (atomic, in the store)
//
// Liveness (revoked, rotated after its grace, expired, not yet valid, used
// up) is decided here, before the policy runs, so no policy however written
// can let a dead token through; the policy decides permissions and can only
// refuse more.
//
// The Caddy handler around it extracts the credential, answers the client,
// strips the credential before the upstream and writes the audit line.
//
// Three in-memory caches keep the common path free of I/O and Rego:
//   - tokens: secret hash -> record (an LRU). Use-limited tokens are never
//     held here, because their use count changes with every call.
//   - unknown: secret hashes the store did not have (an LRU of bounded size
//     whose entries live UnknownBound), so a flood of made-up but
//     well-formed tokens (the checksum is public) does not become a flood
//     of store lookups.
//   - decisions: (token id, token version, policy revision, service, and
//     of method, host, path, raw path, client IP and policy headers only
//     those the policy revision can read) -> decision (ristretto). An
//     entry never outlives the next moment the token's timestamps could
//     change the answer, nor the policy's ttl_seconds. An allow for a
//     use-limited token is never cached.
//
// A revoke or rotate calls Forget, which drops the token from the token
// cache; its version has changed, so no cached decision can match it again.
//
// The caches are trusted only while the node is fresh (Options.Fresh): while
// it cannot confirm that it has seen every token change made on other
// nodes, every call reads its token from the store and asks the policy
// afresh, and fails closed when the store does not answer. With
// Options.StaleReads, a read-only call (see readOnly) whose token and
// decision are both cached is still answered from the caches.
package gateway

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/ratelimit"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// Outcomes of a call, as they appear in the audit line.
const (
	Allow = "allow"
	Deny  = "deny"
	Error = "error"
)

// Cache results, as they appear in the audit line.
const (
	CacheHit  = "hit"
	CacheMiss = "miss"
	CacheNone = "none"
)

// CacheBound caps how long a cached token record or decision is used. It
// is also how long a node that has lost its shared store keeps answering
// calls it has seen: after that their tokens must be read again, which
// fails closed until the store is back.
const CacheBound = 5 * time.Minute

// UnknownBound is how long a secret hash the store did not have is
// answered token_unknown without asking the store again. A secret is
// minted from 160 random bits and shown only after it is stored, so no
// real token can be presented before it exists: the bound only limits
// how long the memory of a flood is kept.
const UnknownBound = time.Minute

// DefaultUnknownCacheSize is how many unknown hashes are remembered.
const DefaultUnknownCacheSize = 100000

// Call is what the gateway knows about one request.
type Call struct {
	// Secret is the presented token; empty when Problem is set.
	Secret string
	// Problem is reason.TokenMissing or reason.TokenMalformed when extraction already
	// failed; the gateway then answers without any lookup.
	Problem string
	Request policy.Request
	Service string
}

// Result is the gateway's answer for one call.
type Result struct {
	Outcome string // Allow, Deny or Error
	// Refusal is why the call may not pass (nil when it is allowed): the
	// code the client is told, its class and every reason behind it.
	Refusal    *reason.Refusal
	Token      *store.Token // nil when the token is unknown
	DecisionID string
	Cache      string
	PolicyRev  string
	// Handoff is set when the call is allowed.
	Handoff Handoff
	// Err is the technical failure behind an Error outcome, for the
	// operator's log; it never goes to the client.
	Err error
	// RateLimit is the rate limiter's answer when a limit applied to the
	// call (its Limit is zero otherwise), for the response's headers.
	RateLimit ratelimit.Decision
}

// Reasons is every reason the call was refused for, as the audit line and
// the metrics carry them; nil when it was allowed.
func (r Result) Reasons() []string {
	if r.Refusal == nil {
		return nil
	}
	return r.Refusal.AllReasons()
}

// refusals holds one refusal for each built-in code alone, made once: most
// refusals are one of them, and a flood of them should cost no allocation.
// They are shared, so never changed.
var refusals = func() map[string]*reason.Refusal {
	m := make(map[string]*reason.Refusal, len(reason.Builtin))
	for _, c := range reason.Builtin {
		m[c.Name] = reason.OfCall([]string{c.Name})
	}
	return m
}()

// refusal is the refusal of a call for one code.
func refusal(code string) *reason.Refusal {
	if r, ok := refusals[code]; ok {
		return r
	}
	return reason.OfCall([]string{code})
}

// refusalFor is the refusal of a call for several reasons (or one).
func refusalFor(reasons []string) *reason.Refusal {
	if len(reasons) == 1 {
		return refusal(reasons[0])
	}
	return reason.OfCall(reasons)
}

// Refuse is the result of a call refused before the gate saw it (a path
// that could be read two ways): one built-in code, nothing looked up.
func Refuse(code string) Result {
	return deny(nil, CacheNone, code)
}

// Handoff is what an allowed call hands on about its token and decision:
// the scopes joined by spaces, as identity headers carry them, and the
// token id, owner, joined scopes and decision id as interface values.
// Converting a string to an interface allocates, and an allowed call
// hands four of them to an interface-typed API (Caddy's replacer), so
// they are made once per token version and per decision instead.
type Handoff struct {
	Scopes                                  string
	TokenID, Owner, ScopesValue, DecisionID any
}

func handoffOf(t *store.Token) Handoff {
	scopes := strings.Join(t.Scopes, " ")
	return Handoff{Scopes: scopes, TokenID: t.ID, Owner: t.Owner, ScopesValue: scopes}
}

// Options configure a Gate.
type Options struct {
	Store  store.Store
	Policy *policy.Engine
	Hasher *token.Hasher
	// PreviousHasher, when set, hashes with the pepper being rotated
	// out: a secret the store does not know under Hasher is looked up
	// under it and, when found, re-keyed to Hasher's hash.
	PreviousHasher *token.Hasher
	// OnRekey, when set, is told the id of each token re-keyed from the
	// previous pepper to the current one (for the operator's log and
	// metrics).
	OnRekey func(tokenID string)
	// DecisionCacheSize is the number of decisions kept; 0 disables the
	// decision cache.
	DecisionCacheSize int
	// TokenCacheSize is the number of token records kept; 0 means 10,000.
	TokenCacheSize int
	// UnknownCacheSize is the number of unknown secret hashes remembered;
	// 0 means DefaultUnknownCacheSize.
	UnknownCacheSize int
	// Now is the clock; tests move it instead of sleeping.
	Now func() time.Time
	// Hold, when set, is asked before a call the policy allowed consumes
	// a use or passes. A non-empty reason code turns the allow into an
	// Error with that reason (the audit log cannot record the call, say),
	// before any use is spent.
	Hold func() string
	// OnStoreError is told about store failures (for the operator's log).
	OnStoreError func(error)
	// ObservePolicy, when set, is told how long each policy evaluation
	// took (for metrics).
	ObservePolicy func(time.Duration)
	// ObserveStore, when set, is told how long each store call of the
	// gateway took, by operation: "get_by_hash", "consume_use",
	// "record_usage" (for metrics).
	ObserveStore func(op string, d time.Duration)
	// Fresh, when set, says whether the node has confirmed recently
	// enough that it has seen every token change; while it says no, the
	// caches are not used (see the package doc). Nil: always fresh (one
	// node, nothing can change behind its back).
	Fresh func() bool
	// StaleReads lets a stale node answer read-only calls from its
	// caches (tokengate's `stale_reads allow`).
	StaleReads bool
	// StoreTimeout, when set, bounds each store call of the request path
	// (lookup, re-key, use consumption); one that runs out fails the
	// call closed with store_unavailable.
	StoreTimeout time.Duration
	// RateLimitNodes is how many nodes share the store, to size the
	// rate limiter's leases (ratelimit.Options.Nodes); 0 means 2.
	RateLimitNodes int
}

// Gate authorizes calls. It is safe for concurrent use.
type Gate struct {
	store  store.Store
	policy *policy.Engine
	hasher *token.Hasher
	// previous is Options.PreviousHasher: nil unless a pepper rotation
	// is under way.
	previous *token.Hasher
	onRekey  func(tokenID string)
	now      func() time.Time
	tokens   *lru.Cache[[32]byte, *cachedToken]
	// unknown maps a secret hash the store did not have to when it
	// stopped answering so (by the gate's clock).
	unknown   *lru.Cache[[32]byte, time.Time]
	decisions *ristretto.Cache[[]byte, *cachedDecision]
	// byID maps the id of each cached token to its secret hash, so a
	// change notification, which carries only the id, is applied without
	// reading the store (which may be what just went away).
	byID    sync.Map // string -> [32]byte
	usage   *usageRecorder
	limiter *ratelimit.Limiter
	hold    func() string
	// observePolicy is Options.ObservePolicy or a no-op.
	observePolicy func(time.Duration)
	fresh         func() bool
	staleReads    bool
}

type cachedToken struct {
	record  *store.Token
	handoff Handoff   // without DecisionID
	term    *ast.Term // input.token, built once per version
	// loadedAt is when the record was read, by the gate's clock.
	loadedAt time.Time
}

type cachedDecision struct {
	// refusal is nil exactly when the call is allowed; made once per
	// decision, so a cached deny costs no allocation.
	refusal   *reason.Refusal
	scope     string
	rateLimit store.RateLimit
	id        string
	idValue   any // id as an interface value, for Handoff
	rev       string
	ttl       time.Duration
	// validUntil is checked on every hit against the gate's clock, so an
	// entry is never used past the token's next boundary even if the
	// cache's own expiry (which runs on the wall clock) lags.
	validUntil time.Time
	// key is the full decision key, checked on every hit.
	key []byte
}

// New returns a Gate. Call Run to start recording usage, and Close when done.
func New(o Options) (*Gate, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TokenCacheSize == 0 {
		o.TokenCacheSize = 10000
	}
	if o.UnknownCacheSize == 0 {
		o.UnknownCacheSize = DefaultUnknownCacheSize
	}
	st := o.Store
	if o.StoreTimeout > 0 {
		st = boundedStore{Store: st, timeout: o.StoreTimeout}
	}
	if o.ObserveStore != nil {
		st = observedStore{Store: st, observe: o.ObserveStore}
	}
	if o.ObservePolicy == nil {
		o.ObservePolicy = func(time.Duration) {}
	}
	if o.Hold == nil {
		o.Hold = func() string { return "" }
	}
	if o.OnRekey == nil {
		o.OnRekey = func(string) {}
	}
	if o.Fresh == nil {
		o.Fresh = func() bool { return true }
	}
	g := &Gate{store: st, policy: o.Policy, hasher: o.Hasher, previous: o.PreviousHasher, onRekey: o.OnRekey,
		now: o.Now, hold: o.Hold, observePolicy: o.ObservePolicy, fresh: o.Fresh, staleReads: o.StaleReads}
	var err error
	g.tokens, err = lru.NewWithEvict(o.TokenCacheSize, func(hash [32]byte, t *cachedToken) {
		g.byID.CompareAndDelete(t.record.ID, hash)
	})
	if err != nil {
		return nil, err
	}
	if g.unknown, err = lru.New[[32]byte, time.Time](o.UnknownCacheSize); err != nil {
		return nil, err
	}
	if o.DecisionCacheSize > 0 {
		g.decisions, err = ristretto.NewCache(&ristretto.Config[[]byte, *cachedDecision]{
			NumCounters: int64(o.DecisionCacheSize) * 10,
			MaxCost:     int64(o.DecisionCacheSize),
			BufferItems: 64,
			// Every decision costs 1, so MaxCost counts decisions. Left
			// on, ristretto would add its own per-item bytes (~56) to
			// each cost and a cache sized 1000 would hold about 17.
			IgnoreInternalCost: true,
		})
		if err != nil {
			return nil, err
		}
	}
	g.usage = newUsageRecorder(st, o.OnStoreError)
	g.limiter = ratelimit.New(ratelimit.Options{Budgets: st, Nodes: o.RateLimitNodes, Now: o.Now, OnStoreError: o.OnStoreError})
	return g, nil
}

// Authorize runs the request path for one call.
func (g *Gate) Authorize(ctx context.Context, c *Call) Result {
	if c.Problem != "" {
		return deny(nil, CacheNone, c.Problem)
	}
	if token.Check(c.Secret) != nil {
		return deny(nil, CacheNone, reason.TokenMalformed)
	}

	hash := g.hasher.Hash(c.Secret)
	now := g.now()
	cached := g.fresh()
	if !cached && g.staleReads && readOnlyMethod(c.Request.Method) {
		if res, ok := g.staleRead(ctx, c, hash, now); ok {
			return res
		}
	}
	tok, err := g.lookup(ctx, c.Secret, hash, now, cached)
	if errors.Is(err, store.ErrNotFound) {
		return deny(nil, CacheNone, reason.TokenUnknown)
	}
	if err != nil {
		return Result{Outcome: Error, Refusal: refusal(reason.StoreUnavailable), Cache: CacheNone, Err: err}
	}
	if dead := Liveness(tok.record, now); dead != nil {
		return Result{Outcome: Deny, Refusal: refusalFor(dead), Token: tok.record, Cache: CacheNone}
	}

	d, cacheResult, err := g.decide(ctx, tok, c, now, cached)
	if err != nil {
		return Result{Outcome: Error, Refusal: refusal(reason.PolicyUnavailable), Token: tok.record, Cache: cacheResult, PolicyRev: d.rev, Err: err}
	}
	return g.conclude(ctx, c, tok, d, cacheResult, now)
}

// conclude turns a decision into the call's result: a deny as it is; an
// allow held back when the audit log cannot record it, else passed after
// spending a use (use-limited tokens, atomically in the store) or noting
// the use for the next usage batch.
func (g *Gate) conclude(ctx context.Context, c *Call, tok *cachedToken, d *cachedDecision, cacheResult string, now time.Time) Result {
	res := Result{Token: tok.record, Refusal: d.refusal, DecisionID: d.id, Cache: cacheResult, PolicyRev: d.rev}
	if d.refusal != nil {
		res.Outcome = Deny
		return res
	}
	if why := g.hold(); why != "" {
		res.Outcome, res.Refusal = Error, refusal(why)
		return res
	}
	if limit := ratelimit.Stricter(tok.record.RateLimit, d.rateLimit); !limit.IsZero() {
		// A rotated token counts with the tokens it was rotated from.
		res.RateLimit = g.limiter.Allow(ctx, cmp.Or(tok.record.RateKey, tok.record.ID), limit)
		if !res.RateLimit.Allowed {
			res.Outcome, res.Refusal = Deny, refusal(reason.RateLimited)
			return res
		}
	}

	usage := store.Usage{TokenID: tok.record.ID, At: now, IP: c.Request.RemoteIP, Scope: d.scope}
	if tok.record.MaxUses > 0 {
		// The store decides who gets the last use: the count read above
		// may already be stale.
		updated, err := g.store.ConsumeUse(ctx, tok.record.ID, usage)
		switch {
		case errors.Is(err, store.ErrUsesExhausted):
			res.Outcome, res.Refusal = Deny, refusal(reason.UsesExhausted)
			return res
		case err != nil:
			return Result{Outcome: Error, Refusal: refusal(reason.StoreUnavailable), Token: tok.record, Cache: cacheResult, PolicyRev: d.rev, Err: err}
		}
		res.Token = updated
		res.Handoff = handoffOf(updated)
	} else {
		g.usage.record(usage)
		res.Handoff = tok.handoff
	}
	res.Handoff.DecisionID = d.idValue
	res.Outcome = Allow
	return res
}

// staleRead answers a call of a stale node from its caches alone, when it
// is read-only: its token and decision are both cached and the decision's
// scope is a read scope. ok is false when the call must go the stale way
// (to the store).
func (g *Gate) staleRead(ctx context.Context, c *Call, hash [32]byte, now time.Time) (res Result, ok bool) {
	tok, hit := g.tokens.Get(hash)
	if !hit || now.Sub(tok.loadedAt) >= CacheBound {
		return Result{}, false
	}
	if dead := Liveness(tok.record, now); dead != nil {
		return Result{Outcome: Deny, Refusal: refusalFor(dead), Token: tok.record, Cache: CacheHit}, true
	}
	d, ok := g.cachedDecision(tok, c, now)
	if !ok || !readOnlyScope(d.scope) {
		return Result{}, false
	}
	return g.conclude(ctx, c, tok, d, CacheHit, now), true
}

// readOnlyMethod: the methods HTTP defines as safe (RFC 9110 9.2.1), as
// sent, so a lower-case "get" an upstream might treat as GET is not one.
func readOnlyMethod(m string) bool {
	return m == "GET" || m == "HEAD" || m == "OPTIONS"
}

// readOnlyScope: a scope named <service>:read, which the default policy
// requires of safe methods only. A decision without a scope (a policy
// that names none) is not read-only.
func readOnlyScope(scope string) bool {
	return strings.HasSuffix(scope, ":read") && len(scope) > len(":read")
}

// Liveness returns why a token cannot be used at all at now, most telling
// first, or nil while it is live. The gateway asks it before the policy and
// on every call, cached decision or not, so no policy and no cache entry
// can outlive a token.
func Liveness(t *store.Token, now time.Time) []string {
	var dead []string
	if !t.RevokedAt.IsZero() {
		dead = append(dead, reason.TokenRevoked)
	}
	// After a rotation the old secret keeps working until GraceUntil, so
	// clients can switch without downtime.
	if (t.RotatedTo != "" || !t.GraceUntil.IsZero()) && !now.Before(t.GraceUntil) {
		dead = append(dead, reason.TokenRotated)
	}
	if !now.Before(t.ExpiresAt) {
		dead = append(dead, reason.TokenExpired)
	}
	if now.Before(t.NotBefore) {
		dead = append(dead, reason.TokenNotYetValid)
	}
	if t.MaxUses > 0 && t.Uses >= t.MaxUses {
		dead = append(dead, reason.UsesExhausted)
	}
	return dead
}

// DryRun answers what the gateway would decide for a stored token and a
// described call, without caches, uses or usage records: liveness first,
// then the policy, as Authorize does. `check` answers through it, so a
// dry run never disagrees with the data plane.
func DryRun(ctx context.Context, engine *policy.Engine, t *store.Token, req policy.Request, service string, now time.Time) (policy.Decision, error) {
	if dead := Liveness(t, now); dead != nil {
		return policy.Decision{Reasons: dead, Revision: engine.Revision()}, nil
	}
	return engine.Decide(ctx, policy.GatewayQuery, policy.GatewayInput(policy.TokenTerm(t), req, service, now))
}

func deny(tok *store.Token, cache, why string) Result {
	return Result{Outcome: Deny, Refusal: refusal(why), Token: tok, Cache: cache}
}

// lookup finds the token for a secret hash, from the token cache when it
// can. Use-limited tokens always come from the store: their use count must
// be current for the policy to see it. hash is secret's hash under the
// current pepper; secret is hashed again only during a pepper rotation,
// when the store does not know hash.
func (g *Gate) lookup(ctx context.Context, secret string, hash [32]byte, now time.Time, cached bool) (*cachedToken, error) {
	if t, ok := g.tokens.Get(hash); cached && ok && now.Sub(t.loadedAt) < CacheBound {
		return t, nil
	}
	if since, ok := g.unknown.Get(hash); ok {
		if now.Sub(since) < UnknownBound {
			return nil, store.ErrNotFound
		}
		g.unknown.Remove(hash)
	}
	// A copy, so that only a miss moves the hash to the heap.
	key := hash
	rec, err := g.store.GetByHash(ctx, key[:])
	if errors.Is(err, store.ErrNotFound) && g.previous != nil {
		rec, err = g.fromPreviousPepper(ctx, secret, key[:])
	}
	// Only now is the secret unknown under every pepper this node has.
	if errors.Is(err, store.ErrNotFound) {
		g.unknown.Add(hash, now)
	}
	if err != nil {
		return nil, err
	}
	t := &cachedToken{record: rec, handoff: handoffOf(rec), term: policy.TokenTerm(rec), loadedAt: now}
	if rec.MaxUses == 0 {
		g.tokens.Add(hash, t)
		g.byID.Store(rec.ID, hash)
	}
	return t, nil
}

// fromPreviousPepper looks secret up under the previous pepper and moves
// the record it finds to hash, the current pepper's, so the token keeps
// working once the previous pepper is removed. The lookup and the move are
// one store call (Rekey), which either moves the record or finds nothing.
func (g *Gate) fromPreviousPepper(ctx context.Context, secret string, hash []byte) (*store.Token, error) {
	old := g.previous.Hash(secret)
	rec, err := g.store.Rekey(ctx, old[:], hash)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		// Unknown under the previous pepper too, or another node (or a
		// concurrent call) has just moved it to hash: ask for hash again
		// so the loser of that race still finds the token.
		return g.store.GetByHash(ctx, hash)
	}
	if err != nil {
		return nil, err
	}
	g.onRekey(rec.ID)
	return rec, nil
}

// decide returns the policy's decision, from the decision cache when it
// can and cached allows it. A decision made afresh is cached either way:
// made now, from a record just read, it is as current as the feed's next
// catch-up, which names every token changed since the node fell behind.
func (g *Gate) decide(ctx context.Context, tok *cachedToken, c *Call, now time.Time, cached bool) (*cachedDecision, string, error) {
	rev, reads := g.policy.GatewayReads()
	if g.decisions == nil {
		d, err := g.evaluate(ctx, tok, c, now, rev)
		return d, CacheNone, err
	}
	buf := keyBuffers.Get().(*[]byte)
	defer keyBuffers.Put(buf)
	key := appendDecisionKey((*buf)[:0], tok.record, rev, reads, c)
	*buf = key
	// ristretto matches keys by two 64-bit hashes; comparing the stored
	// key as well means no crafted path or host can ever borrow another
	// call's decision, whatever the odds of a collision.
	if d, ok := g.decisions.Get(key); cached && ok && now.Before(d.validUntil) && bytes.Equal(d.key, key) {
		return d, CacheHit, nil
	}
	d, err := g.evaluate(ctx, tok, c, now, rev)
	if err != nil {
		return d, CacheMiss, err
	}
	// The key holds only what rev reads; a decision a reload's newer
	// revision made in between may depend on more, so it is not kept.
	if ttl := cacheTTL(tok.record, d, now); ttl > 0 && d.rev == rev {
		d.validUntil, d.key = now.Add(ttl), bytes.Clone(key)
		g.decisions.SetWithTTL(d.key, d, 1, ttl)
	}
	return d, CacheMiss, nil
}

func (g *Gate) evaluate(ctx context.Context, tok *cachedToken, c *Call, now time.Time, rev string) (*cachedDecision, error) {
	start := time.Now()
	pd, err := g.policy.Decide(ctx, policy.GatewayQuery, policy.GatewayInput(tok.term, c.Request, c.Service, now))
	g.observePolicy(time.Since(start))
	if err != nil {
		return &cachedDecision{rev: rev}, err
	}
	id := token.NewPrefixedID("dec_")
	d := &cachedDecision{
		scope:     pd.Scope,
		rateLimit: pd.RateLimit,
		id:        id,
		idValue:   id,
		rev:       pd.Revision,
		ttl:       pd.TTL,
	}
	if len(pd.Reasons) > 0 {
		d.refusal = refusalFor(pd.Reasons)
	}
	return d, nil
}

// cachedDecision returns the cached decision for the call, if any.
func (g *Gate) cachedDecision(tok *cachedToken, c *Call, now time.Time) (*cachedDecision, bool) {
	if g.decisions == nil {
		return nil, false
	}
	rev, reads := g.policy.GatewayReads()
	buf := keyBuffers.Get().(*[]byte)
	defer keyBuffers.Put(buf)
	key := appendDecisionKey((*buf)[:0], tok.record, rev, reads, c)
	*buf = key
	d, ok := g.decisions.Get(key)
	if !ok || !now.Before(d.validUntil) || !bytes.Equal(d.key, key) {
		return nil, false
	}
	return d, true
}

// cacheTTL is how long a decision may be reused: until the next moment the
// token's own timestamps could change it, capped by the policy's
// ttl_seconds and CacheBound. Zero means do not cache.
func cacheTTL(t *store.Token, d *cachedDecision, now time.Time) time.Duration {
	if d.refusal == nil && t.MaxUses > 0 {
		return 0
	}
	ttl := CacheBound
	if d.ttl > 0 && d.ttl < ttl {
		ttl = d.ttl
	}
	for _, boundary := range []time.Time{t.NotBefore, t.ExpiresAt, t.GraceUntil} {
		if boundary.After(now) && boundary.Sub(now) < ttl {
			ttl = boundary.Sub(now)
		}
	}
	return ttl
}

// keyBuffers hold decision keys while they are looked up: ristretto keeps
// only hashes of a key, so the bytes can be reused by the next call.
var keyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// appendDecisionKey appends to b a key covering everything the decision
// depends on: the token's id and version (all of input.token), the policy
// revision, the service (all of input.route) and those request fields
// reads says revision rev can read, so calls that differ only in fields
// the policy never looks at (ids in paths, most often) share a decision.
// The client address counts for a token without CIDRs only when the
// policy reads it outside rules that need one of the token's CIDRs.
// Fields are joined with a byte that cannot occur in any of them (NUL is
// rejected in HTTP request lines and headers), and which fields a key
// holds is fixed by rev, which comes first, so two calls the policy could
// tell apart never share a key.
func appendDecisionKey(b []byte, t *store.Token, rev string, reads *policy.Reads, c *Call) []byte {
	b = append(b, t.ID...)
	b = append(b, 0)
	b = strconv.AppendUint(b, t.Version, 10)
	b = append(b, 0)
	b = append(b, rev...)
	b = append(b, 0)
	b = append(b, c.Service...)
	for _, f := range [...]struct {
		read  bool
		value string
	}{
		{reads.Method, c.Request.Method},
		{reads.Host, c.Request.Host},
		{reads.Path, c.Request.Path},
		{reads.RawPath, c.Request.RawPath},
		{reads.RemoteIP || reads.RemoteIPWithCIDRs && len(t.CIDRs) > 0, c.Request.RemoteIP},
	} {
		if f.read {
			b = append(b, 0)
			b = append(b, f.value...)
		}
	}
	if !reads.AllHeaders {
		// A header the policy names may be absent, which it can tell
		// from empty: a present one is marked with 1, a byte no header
		// value holds either.
		for _, name := range reads.Headers {
			b = append(b, 0)
			if v, ok := c.Request.Headers[name]; ok {
				b = append(b, 1)
				b = append(b, v...)
			}
		}
		return b
	}
	if len(c.Request.Headers) == 0 {
		return b
	}
	var names [8]string
	sorted := names[:0]
	for k := range c.Request.Headers {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	for _, k := range sorted {
		b = append(b, 0)
		b = append(b, k...)
		b = append(b, 1)
		b = append(b, c.Request.Headers[k]...)
	}
	return b
}

// Forget drops a token from the caches after it changed (revoke, rotate,
// any update), so the very next call sees the stored record.
func (g *Gate) Forget(t *store.Token) {
	var hash [32]byte
	copy(hash[:], t.Hash)
	g.tokens.Remove(hash)
}

// ForgetID drops a token from the token cache by its id, as a change
// notification from another node names it. Ids this gate has not cached
// (other deployments sharing the database, say) cost nothing.
func (g *Gate) ForgetID(id string) {
	if hash, ok := g.byID.Load(id); ok {
		g.tokens.Remove(hash.([32]byte))
	}
}

// ForgetAll drops every cached token and decision, for when changes may
// have been missed (a shared store's notification connection was lost).
func (g *Gate) ForgetAll() {
	g.tokens.Purge()
	g.unknown.Purge()
	if g.decisions != nil {
		g.decisions.Clear()
	}
}

// SettleDecisions returns once every decision cached so far can be read
// back: ristretto applies writes on a goroutine of its own, a moment after
// the call that made them. Tests use it to make "the next call is a hit"
// deterministic; the request path never waits.
func (g *Gate) SettleDecisions() {
	if g.decisions != nil {
		g.decisions.Wait()
	}
}

// Run records usage of unlimited tokens in batches and takes rate-limit
// leases until ctx is done; then it settles the leases with the store.
func (g *Gate) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { g.limiter.Run(ctx) })
	g.usage.run(ctx)
	wg.Wait()
	giveBack, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := g.limiter.Close(giveBack); err != nil {
		g.usage.onError(err)
	}
}

// Close releases the caches.
func (g *Gate) Close() {
	if g.decisions != nil {
		g.decisions.Close()
	}
}
