// Package store is the contract between tokengate and the storage behind
// it: the token and request records, the interfaces a backend implements
// (Store and RequestStore, together Backend; Notifier for a store several
// gateway nodes share) and the errors it returns. Backends may live
// outside this repository: a Caddy module in the tokengate.stores
// namespace opens one, and the conformance suite in store/storetest checks
// it (the bbolt and PostgreSQL backends shipped with tokengate pass it).
//
// A store never sees a secret: tokens are keyed by the hash of their
// secret and by their public id.
//
// What every backend must guarantee, beyond each method's own doc:
//
//   - Every method is safe for concurrent use, by several goroutines and,
//     for a shared store, by several processes.
//   - Returned records are the caller's: a backend returns copies and never
//     keeps a reference to a record it was handed or returned (Clone).
//   - Every change to a record grows its Version, strictly, in the same
//     transaction as the change. Gateways cache tokens and decisions keyed
//     on Version, so a change that kept it would let a cached allow outlive
//     a revoke. RecordUsage is the one exception, on purpose.
//   - Update, Rotate, UpdateChain, ConsumeUse, UpdateRequest, ClaimRequest
//     and CreateFirst are atomic: their check and their write are one
//     transaction, and no other change to the same records interleaves.
//     In particular two concurrent ConsumeUse calls never both spend the
//     last use, a rotated token and its successors share one use budget
//     (see ConsumeUse), a request is claimed at most once and never
//     without its token, and two concurrent CreateFirst calls for one
//     service never both succeed.
//   - A change callback (Update's change, Rotate's change, ...) that
//     returns an error leaves nothing stored, and that error is returned
//     (wrapped or not) so that errors.Is finds it.
//   - The situations named by ErrNotFound, ErrConflict and
//     ErrUsesExhausted are reported with those errors (possibly wrapped);
//     any other error means the store could not answer, and tokengate
//     fails closed on it (503), never treating it as "no such token".
//   - Writes are durable once a method returns nil.
//   - A backend that several nodes share implements ChangeFeed (and
//     Notifier, for older callers): without confirmations from a feed a
//     node can never know it is current, and answers every call from the
//     store.
package store

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Errors every backend returns for the same situations, so callers can map
// them to HTTP statuses without knowing the backend.
var (
	ErrNotFound      = errors.New("not found")
	ErrConflict      = errors.New("already exists")
	ErrUsesExhausted = errors.New("token has no uses left")
)

// Token is the stored record of one API token.
type Token struct {
	ID        string    `json:"id"`
	Hash      []byte    `json:"hash"`
	Owner     string    `json:"owner"`
	Purpose   string    `json:"purpose"`
	Scopes    []string  `json:"scopes"`
	Services  []string  `json:"services"`
	CIDRs     []string  `json:"cidrs,omitempty"`
	NotBefore time.Time `json:"not_before"`
	ExpiresAt time.Time `json:"expires_at"`
	MaxUses   int64     `json:"max_uses"`
	Uses      int64     `json:"uses"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	// HeldBy is the verified principal who holds the secret: whoever
	// claimed or received it. Separation of duties compares holders,
	// never owners, which are only names typed into a request.
	HeldBy string `json:"held_by,omitempty"`
	// HolderGroups are the groups the identity provider gave the holder
	// when they claimed the token (empty for one claimed without an ID
	// token's groups). A management token's caller is judged with them,
	// so rules about a person's groups follow every credential they hold.
	HolderGroups []string  `json:"holder_groups,omitempty"`
	ApprovedBy   string    `json:"approved_by,omitempty"`
	RotatedFrom  string    `json:"rotated_from,omitempty"`
	RotatedTo    string    `json:"rotated_to,omitempty"`
	GraceUntil   time.Time `json:"grace_until,omitzero"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	RevokedBy    string    `json:"revoked_by,omitempty"`
	RevokeReason string    `json:"revoke_reason,omitempty"`
	// ExposedAt is when a scanner reported the secret found in the wild
	// (a public repository, a paste, a CI log). An exposed token is
	// revoked in the same change, and its state reads exposed rather
	// than revoked, so the inventory tells a leak from a routine revoke.
	ExposedAt time.Time `json:"exposed_at,omitzero"`
	// ExposureSource names who reported the leak (github, gitleaks, or
	// the source a reporter gave); ExposureURL is where it was found.
	ExposureSource string    `json:"exposure_source,omitempty"`
	ExposureURL    string    `json:"exposure_url,omitempty"`
	LastUsedAt     time.Time `json:"last_used_at,omitzero"`
	LastUsedIP     string    `json:"last_used_ip,omitempty"`
	// UsedScopes lists the scopes that calls have actually exercised, for
	// the privilege-creep report.
	UsedScopes []string `json:"used_scopes,omitempty"`
	// RateLimit caps the token's calls per window; the zero value is no
	// limit of its own (the gateway policy may still set one).
	RateLimit RateLimit `json:"rate_limit,omitzero"`
	// RateKey is the id the token's calls are counted under: the first
	// token of its rotation chain (empty for that one, which uses its own
	// id), so rotating a token never starts its rate limit afresh.
	RateKey string `json:"rate_key,omitempty"`
	// Version grows with every change to the record. Decision caches key
	// on it, so a changed token can never hit a decision made before.
	Version uint64 `json:"version"`
}

// Clone returns a deep copy, so callers can hand records around without
// sharing slices.
func (t *Token) Clone() *Token {
	c := *t
	c.Hash = slices.Clone(t.Hash)
	c.Scopes = slices.Clone(t.Scopes)
	c.Services = slices.Clone(t.Services)
	c.CIDRs = slices.Clone(t.CIDRs)
	c.UsedScopes = slices.Clone(t.UsedScopes)
	c.HolderGroups = slices.Clone(t.HolderGroups)
	return &c
}

// RateLimit is at most Requests calls per Window. The zero value means
// no limit.
type RateLimit struct {
	Requests int64         `json:"requests"`
	Window   time.Duration `json:"window"`
}

// IsZero reports whether l sets no limit.
func (l RateLimit) IsZero() bool { return l.Requests == 0 }

// Usage is one observed use of a token, recorded off the request path.
type Usage struct {
	TokenID string
	At      time.Time
	IP      string
	Scope   string
}

// Filter narrows List. Empty fields match everything.
type Filter struct {
	Owner   string
	Service string
}

// Matches reports whether t passes the filter. Backends that cannot filter
// natively use it after loading.
func (f Filter) Matches(t *Token) bool {
	if f.Owner != "" && t.Owner != f.Owner {
		return false
	}
	if f.Service != "" && !slices.Contains(t.Services, f.Service) {
		return false
	}
	return true
}

// Store is implemented by every backend. All methods are safe for concurrent
// use. Methods that change a record bump its Version.
type Store interface {
	// Create adds a new token. ErrConflict when its id or hash exists.
	Create(ctx context.Context, t *Token) error
	// Get returns the token with the given public id, or ErrNotFound.
	Get(ctx context.Context, id string) (*Token, error)
	// GetByHash returns the token whose secret hashes to hash, or
	// ErrNotFound. This is the only way the data plane finds a token.
	GetByHash(ctx context.Context, hash []byte) (*Token, error)
	// Rekey moves the token whose secret hashes to oldHash to newHash, in
	// one transaction, and returns the stored record (its Version grows,
	// so cached decisions of the old record are not reused). The gateway
	// calls it when a secret is found only under the previous pepper, so
	// the token keeps working once that pepper is gone. ErrNotFound when
	// no token has oldHash (another node may have moved it first);
	// ErrConflict, changing nothing, when a token has newHash already.
	Rekey(ctx context.Context, oldHash, newHash []byte) (*Token, error)
	// List returns the tokens matching f, ordered by creation time.
	List(ctx context.Context, f Filter) ([]*Token, error)
	// Update applies change to the token atomically (no other update can
	// interleave) and stores the result. If change returns an error,
	// nothing is stored and that error is returned.
	Update(ctx context.Context, id string, change func(*Token) error) (*Token, error)
	// Rotate atomically creates next and applies change to the token it
	// replaces, so a crash never leaves one without the other. change runs
	// on the locked old record before next is stored, so it may shape next
	// from it (the successor's use budget is what the old one had left at
	// that instant, with no use spent in between).
	Rotate(ctx context.Context, oldID string, next *Token, change func(old *Token) error) (*Token, error)
	// UpdateChain applies change to every token of id's rotation chain:
	// the tokens id was rotated from (following RotatedFrom to the first)
	// and to (following RotatedTo to the newest), id among them, oldest
	// first. change reports whether it changed a token; only those are
	// stored (their Version grows) and returned, oldest first. If change
	// returns an error, nothing is stored and that error is returned.
	// ErrNotFound when id does not exist.
	//
	// The walk and the writes are one transaction that no Rotate of a
	// token of the chain interleaves: a concurrent rotation either comes
	// first, and its new token is part of the chain change sees, or
	// comes after, and sees the changed records. That is what lets a
	// revoke of any id of the chain stop every secret of it, whatever is
	// rotated meanwhile.
	UpdateChain(ctx context.Context, id string, change func(*Token) (bool, error)) ([]*Token, error)
	// ConsumeUse spends one use of a use-limited token. It returns
	// ErrUsesExhausted, without changing anything, when none is left. Two
	// concurrent calls never both spend the last use.
	//
	// A rotated token and its successors share one budget: the newest
	// token of the rotation chain (follow RotatedTo until it is empty)
	// holds it. Consuming a use of a rotated token, as the gateway does
	// while the old secret is in its grace window, spends a use of that
	// newest token (its Uses and Version grow, and its MaxUses is the
	// limit), and records the usage (last use, scope) on the token
	// consumed, whose Uses and Version stay as they were at rotation, as
	// RecordUsage would. The check, the spend and the record are one
	// transaction, so old and new secrets used concurrently never spend
	// more than the budget the newest token holds. Whether the old
	// secret is still in its grace window is the caller's decision, not
	// the store's. The record returned is that of id.
	ConsumeUse(ctx context.Context, id string, u Usage) (*Token, error)
	// RecordUsage stores observations of unlimited tokens in one batch:
	// last use time and address, and the scope exercised. Unknown ids are
	// skipped. It does not bump Version: usage statistics never change a
	// decision, and cached decisions should survive a flush.
	RecordUsage(ctx context.Context, batch []Usage) error
	// MarkUsed records that the one-time credential whose hash is key
	// (a workload's subject token, exchanged once) was used, until
	// expires, when the credential itself expires and cannot be presented
	// again anyway. It returns ErrConflict, changing nothing, when key was
	// recorded before and its record has not expired at now; an expired
	// record is replaced. Two concurrent calls with one key, on one node
	// or several, never both succeed. Records past their expiry may be
	// dropped at any time.
	MarkUsed(ctx context.Context, key []byte, expires, now time.Time) error
	// TakeBudget takes up to want calls from the budget of the rate-limit
	// counter key for the window that starts at window, of which at most
	// limit may be taken altogether, and returns how many it took and how
	// many the window has had taken in total, these included. A negative
	// want gives back calls taken but not spent (the total never drops
	// below zero). The check and the take are one transaction: concurrent
	// calls, on one node or several, never take more than limit together.
	// limit may differ between calls (a policy reloaded); a call takes
	// nothing once the total reaches its own limit. A counter unknown for
	// its window starts at zero. A record may be dropped once a take for
	// a window that starts at or after its KeepUntil has been made.
	TakeBudget(ctx context.Context, b BudgetTake) (taken, total int64, err error)
	// Close releases the backend's resources.
	Close() error
}

// BudgetTake is one TakeBudget call.
type BudgetTake struct {
	// Key names the counter (a token's id and its limit).
	Key string
	// Window is when the counter's window starts.
	Window time.Time
	// Want is how many calls to take; negative to give back.
	Want int64
	// Limit is the most the window may have taken in total.
	Limit int64
	// KeepUntil is when the record may be dropped: the window's end.
	KeepUntil time.Time
}

// Grant returns how many of want a window that has taken total calls of
// limit can give, for backends that compute it outside their query
// language; a give-back (want < 0) returns at most total.
func (b BudgetTake) Grant(total int64) int64 {
	if b.Want < 0 {
		return max(b.Want, -total)
	}
	return max(0, min(b.Want, b.Limit-total))
}

// ApplyUsage folds a usage observation into t. Backends share it so they
// agree on what "last used" means when batches arrive out of order.
func ApplyUsage(t *Token, u Usage) {
	if u.At.After(t.LastUsedAt) {
		t.LastUsedAt = u.At
		t.LastUsedIP = u.IP
	}
	if u.Scope != "" && !slices.Contains(t.UsedScopes, u.Scope) {
		t.UsedScopes = append(t.UsedScopes, u.Scope)
		slices.Sort(t.UsedScopes)
	}
}

// Notifier is implemented by backends that several gateway nodes share.
// Each node keeps in-memory caches of tokens and decisions; the notifier
// tells it when another node changed a token, so that a revoke or rotate on
// one node takes effect on all of them.
type Notifier interface {
	// Watch blocks until ctx is done. It calls changed with a token id
	// after any node changes that token, and reset whenever notifications
	// may have been missed (each time it starts listening, so also after
	// a lost connection comes back), after which the caller must drop
	// everything it cached.
	Watch(ctx context.Context, changed func(tokenID string), reset func())
}

// ChangeFeed is implemented by every backend: it tells a node which tokens
// changed, and up to when it is sure it has been told of every change, so
// that a node that cannot confirm it is current stops answering from its
// caches (tokengate's max_staleness). A backend no other process writes
// (bbolt: one node holds the file) confirms with Forever once.
type ChangeFeed interface {
	// Follow blocks until ctx is done, reporting to f. It never calls f
	// concurrently with itself.
	Follow(ctx context.Context, f Follower)
}

// Follower receives a change feed.
type Follower interface {
	// Changed names a token that changed on any node since the last
	// report; the node drops what it cached about it.
	Changed(tokenID string)
	// Reset says changes may have been missed that cannot be named (the
	// feed just started, or lost more than it keeps); the node drops
	// everything it cached.
	Reset()
	// CaughtUp says every change committed before asOf (on the node's
	// clock) has been reported. Reports only move forward.
	CaughtUp(asOf time.Time)
}

// Forever is the CaughtUp of a store whose every change is made by this
// process, as it is made: the node can never be behind.
var Forever = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// FeedReporter is implemented by a Notifier that knows whether its change
// feed is up, so that a node can say it is not ready, and how long it has
// been blind, while changes made on other nodes may be passing it by.
type FeedReporter interface {
	// FeedLive reports whether Watch is listening now, and since when it
	// has been in that state (listening, or not: lost, or never yet
	// connected).
	FeedLive() (live bool, since time.Time)
}

// Request is a management request for a token: someone asks, someone else
// approves, the asker claims the secret. The secret exists only from the
// claim on, and only in the claim's response.
type Request struct {
	ID        string        `json:"id"`
	Owner     string        `json:"owner"`
	Purpose   string        `json:"purpose"`
	Scopes    []string      `json:"scopes"`
	Services  []string      `json:"services"`
	CIDRs     []string      `json:"cidrs,omitempty"`
	TTL       time.Duration `json:"ttl"`
	NotBefore time.Time     `json:"not_before,omitzero"`
	MaxUses   int64         `json:"max_uses"`
	// RateLimit is the limit the token will carry once claimed.
	RateLimit   RateLimit `json:"rate_limit,omitzero"`
	Status      string    `json:"status"` // pending, approved, denied, claimed
	RequestedBy string    `json:"requested_by"`
	// RequesterGroups are the groups the identity provider gave the
	// requester when they asked (through their ID token, or recorded on
	// the management token they used), so approval and claim judge the
	// request with them.
	RequesterGroups []string `json:"requester_groups,omitempty"`
	// Ticket is the change ticket or justification the approver sees.
	Ticket string `json:"ticket,omitempty"`
	// RequestedWith is the id of the management token used to ask.
	RequestedWith string    `json:"requested_with"`
	CreatedAt     time.Time `json:"created_at"`
	DecidedBy     string    `json:"decided_by,omitempty"`
	DecidedAt     time.Time `json:"decided_at,omitzero"`
	Reason        string    `json:"reason,omitempty"`
	// ClaimBy is when an approved request lapses unclaimed.
	ClaimBy   time.Time `json:"claim_by,omitzero"`
	ClaimedAt time.Time `json:"claimed_at,omitzero"`
	// LapsedAt is when a node recorded (and announced) that the approved
	// request went unclaimed; from then on it cannot be claimed, whatever
	// a clock says.
	LapsedAt time.Time `json:"lapsed_at,omitzero"`
	TokenID  string    `json:"token_id,omitempty"`
	Version  uint64    `json:"version"`
}

// Request statuses as stored. "lapsed" is derived: approved and past
// ClaimBy, or with LapsedAt set.
const (
	RequestPending  = "pending"
	RequestApproved = "approved"
	RequestDenied   = "denied"
	RequestClaimed  = "claimed"
)

// RequestStore keeps management requests. Every backend implements it
// next to Store.
type RequestStore interface {
	// CreateRequest adds a request. ErrConflict when its id exists.
	CreateRequest(ctx context.Context, r *Request) error
	// GetRequest returns one request or ErrNotFound.
	GetRequest(ctx context.Context, id string) (*Request, error)
	// ListRequests returns requests with the given stored status (all
	// when empty), oldest first.
	ListRequests(ctx context.Context, status string) ([]*Request, error)
	// UpdateRequest applies change atomically, like Store.Update.
	UpdateRequest(ctx context.Context, id string, change func(*Request) error) (*Request, error)
	// ClaimRequest applies change to the request and creates tok in one
	// transaction, so a request is claimed at most once and never without
	// its token.
	ClaimRequest(ctx context.Context, id string, change func(*Request) error, tok *Token) (*Request, error)
	// CreateFirst creates toks only while no stored token is bound to
	// service; otherwise it returns ErrConflict and creates nothing. The
	// check and the creation are one transaction, so two concurrent
	// bootstraps cannot both succeed.
	CreateFirst(ctx context.Context, service string, toks []*Token) error
}

// Backend is what a storage module provides: tokens and requests.
type Backend interface {
	Store
	RequestStore
}
