// Package memstore is an example of a token store written outside
// tokengate: the Caddy module tokengate.stores.memory keeps tokens and
// requests in memory. It builds only on tokengate's public packages (the
// store contract in package store, checked by the suite in store/storetest)
// and on Caddy, as a Redis or CockroachDB store would.
//
// Everything is lost when the process exits, so it is for tests and demos;
// within one process it survives config reloads, because configs that
// name the same data set share one store.
//
//	tokengate {
//		store memory [<name>]
//	}
package memstore

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/caddy-tokengate/caddymodule"
	"github.com/tokengate/caddy-tokengate/store"
)

func init() {
	caddy.RegisterModule(Module{})
}

// Module is the Caddy module tokengate.stores.memory.
type Module struct {
	// Name of the data set; configs with the same name share it. Default
	// "default".
	Name string `json:"name,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Module) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tokengate.stores.memory",
		New: func() caddy.Module { return new(Module) },
	}
}

// StoreKey names the data set: tokengate opens one store per key and
// shares it between the configs of a reload.
func (m *Module) StoreKey() string { return "memory:" + cmp.Or(m.Name, "default") }

// OpenStore returns an empty store.
func (m *Module) OpenStore(caddy.Context) (store.Backend, error) { return New(), nil }

// UnmarshalCaddyfile reads `memory [<name>]`.
func (m *Module) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		m.Name = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("the memory store takes no block, got %q", d.Val())
	}
	return nil
}

// Store is the in-memory backend. One mutex makes every method a
// transaction; records are copied on the way in and out, so no caller
// shares memory with the store.
type Store struct {
	mu       sync.Mutex
	tokens   map[string]*store.Token // by id
	byHash   map[string]string       // secret hash -> id
	requests map[string]*store.Request
	used     map[string]time.Time // one-time credential hash -> record expiry
	people                        // console sessions and security keys (people.go)
	budgets  map[budgetKey]*budget
}

// budgetKey names one window of one rate-limit counter.
type budgetKey struct {
	key    string
	window time.Time
}

type budget struct {
	total     int64
	keepUntil time.Time
}

// New returns an empty store.
func New() *Store {
	return &Store{tokens: map[string]*store.Token{}, byHash: map[string]string{}, requests: map[string]*store.Request{}, used: map[string]time.Time{}, people: newPeople(), budgets: map[budgetKey]*budget{}}
}

// Create adds a token; ErrConflict when its id or hash exists.
func (s *Store) Create(_ context.Context, t *store.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.create(t)
}

func (s *Store) create(t *store.Token) error {
	if _, ok := s.tokens[t.ID]; ok {
		return store.ErrConflict
	}
	if _, ok := s.byHash[string(t.Hash)]; ok {
		return store.ErrConflict
	}
	s.tokens[t.ID] = t.Clone()
	s.byHash[string(t.Hash)] = t.ID
	return nil
}

// Get returns the token with the given id.
func (s *Store) Get(_ context.Context, id string) (*store.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return t.Clone(), nil
}

// GetByHash returns the token whose secret hashes to hash.
func (s *Store) GetByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	s.mu.Lock()
	id, ok := s.byHash[string(hash)]
	s.mu.Unlock()
	if !ok {
		return nil, store.ErrNotFound
	}
	return s.Get(ctx, id)
}

// Rekey moves the token stored under oldHash to newHash, under one lock.
func (s *Store) Rekey(_ context.Context, oldHash, newHash []byte) (*store.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byHash[string(oldHash)]
	if !ok {
		return nil, store.ErrNotFound
	}
	if _, ok := s.byHash[string(newHash)]; ok {
		return nil, store.ErrConflict
	}
	t, err := s.changed(id, func(t *store.Token) error {
		t.Hash = bytes.Clone(newHash)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.tokens[id] = t.Clone()
	delete(s.byHash, string(oldHash))
	s.byHash[string(newHash)] = id
	return t, nil
}

// List returns the tokens matching f, oldest first.
func (s *Store) List(_ context.Context, f store.Filter) ([]*store.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*store.Token
	for _, t := range s.tokens {
		if f.Matches(t) {
			out = append(out, t.Clone())
		}
	}
	slices.SortStableFunc(out, func(a, b *store.Token) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Update applies change to a copy and stores it only if change succeeds.
func (s *Store) Update(_ context.Context, id string, change func(*store.Token) error) (*store.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.changed(id, change)
	if err != nil {
		return nil, err
	}
	s.tokens[id] = t.Clone()
	return t, nil
}

// changed returns a changed copy of token id, with its Version bumped,
// without storing it.
func (s *Store) changed(id string, change func(*store.Token) error) (*store.Token, error) {
	cur, ok := s.tokens[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	t := cur.Clone()
	if err := change(t); err != nil {
		return nil, err
	}
	t.Version++
	return t, nil
}

// Rotate changes the old token and creates next, both or neither.
func (s *Store) Rotate(_ context.Context, oldID string, next *store.Token, change func(*store.Token) error) (*store.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.changed(oldID, change)
	if err != nil {
		return nil, err
	}
	if err := s.create(next); err != nil {
		return nil, err
	}
	s.tokens[oldID] = old.Clone()
	return old, nil
}

// MarkUsed records key until expires, unless a record of it is live.
func (s *Store) MarkUsed(_ context.Context, key []byte, expires, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if until, ok := s.used[string(key)]; ok && now.Before(until) {
		return store.ErrConflict
	}
	for k, until := range s.used {
		if !now.Before(until) {
			delete(s.used, k)
		}
	}
	s.used[string(key)] = expires
	return nil
}

// TakeBudget takes from a window's budget under the store's lock, and
// drops the windows that have ended.
func (s *Store) TakeBudget(_ context.Context, b store.BudgetTake) (taken, total int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.budgets {
		if !v.keepUntil.After(b.Window) {
			delete(s.budgets, k)
		}
	}
	k := budgetKey{b.Key, b.Window.UTC()}
	v, ok := s.budgets[k]
	if !ok {
		v = &budget{}
		s.budgets[k] = v
	}
	taken = b.Grant(v.total)
	v.total += taken
	v.keepUntil = b.KeepUntil
	return taken, v.total, nil
}

// maxChain bounds the walk to the newest token of a rotation chain.
const maxChain = 1000

// UpdateChain changes copies of the tokens of id's rotation chain under
// the store's lock and stores them only once change accepted all of them.
func (s *Store) UpdateChain(_ context.Context, id string, change func(*store.Token) (bool, error)) ([]*store.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	for hops := 0; t.RotatedFrom != ""; hops++ {
		if t, ok = s.tokens[t.RotatedFrom]; !ok || hops == maxChain {
			return nil, fmt.Errorf("token %s: rotation chain cannot be followed back", id)
		}
	}
	var changed []*store.Token
	for hops := 0; ; hops++ {
		c := t.Clone()
		ok, err := change(c)
		if err != nil {
			return nil, err
		}
		if ok {
			c.Version++
			changed = append(changed, c)
		}
		if t.RotatedTo == "" {
			break
		}
		if t, ok = s.tokens[t.RotatedTo]; !ok || hops == maxChain {
			return nil, fmt.Errorf("token %s: rotation chain cannot be followed", id)
		}
	}
	out := make([]*store.Token, len(changed))
	for i, c := range changed {
		s.tokens[c.ID] = c.Clone()
		out[i] = c
	}
	return out, nil
}

// ConsumeUse spends a use of the budget the newest token of id's rotation
// chain holds and records the usage on id.
func (s *Store) ConsumeUse(_ context.Context, id string, u store.Usage) (*store.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	holder := t
	for hops := 0; holder.RotatedTo != ""; hops++ {
		next, ok := s.tokens[holder.RotatedTo]
		if !ok || hops == maxChain {
			return nil, fmt.Errorf("token %s: rotation chain to %s cannot be followed", t.ID, holder.RotatedTo)
		}
		holder = next
	}
	if holder.MaxUses > 0 && holder.Uses >= holder.MaxUses {
		return nil, store.ErrUsesExhausted
	}
	holder.Uses++
	holder.Version++
	store.ApplyUsage(t, u)
	return t.Clone(), nil
}

// RecordUsage folds usage observations into their tokens, skipping
// unknown ids; Version stays.
func (s *Store) RecordUsage(_ context.Context, batch []store.Usage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range batch {
		if t, ok := s.tokens[u.TokenID]; ok {
			store.ApplyUsage(t, u)
		}
	}
	return nil
}

// Follow implements store.ChangeFeed: one process holds the data and
// makes every change, so nothing can pass this node by.
func (s *Store) Follow(ctx context.Context, f store.Follower) {
	f.CaughtUp(store.Forever)
	<-ctx.Done()
}

// Close does nothing: the data lives as long as the process.
func (s *Store) Close() error { return nil }

// CreateRequest adds a request; ErrConflict when its id exists.
func (s *Store) CreateRequest(_ context.Context, r *store.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.requests[r.ID]; ok {
		return store.ErrConflict
	}
	s.requests[r.ID] = cloneRequest(r)
	return nil
}

// GetRequest returns one request.
func (s *Store) GetRequest(_ context.Context, id string) (*store.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return cloneRequest(r), nil
}

// ListRequests returns the requests with the given status (all when
// empty), oldest first.
func (s *Store) ListRequests(_ context.Context, status string) ([]*store.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*store.Request
	for _, r := range s.requests {
		if status == "" || r.Status == status {
			out = append(out, cloneRequest(r))
		}
	}
	slices.SortStableFunc(out, func(a, b *store.Request) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// UpdateRequest applies change to a copy and stores it only if change
// succeeds.
func (s *Store) UpdateRequest(_ context.Context, id string, change func(*store.Request) error) (*store.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.changedRequest(id, change)
	if err != nil {
		return nil, err
	}
	s.requests[id] = cloneRequest(r)
	return r, nil
}

func (s *Store) changedRequest(id string, change func(*store.Request) error) (*store.Request, error) {
	cur, ok := s.requests[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	r := cloneRequest(cur)
	if err := change(r); err != nil {
		return nil, err
	}
	r.Version++
	return r, nil
}

// ClaimRequest changes the request and creates tok, both or neither.
func (s *Store) ClaimRequest(_ context.Context, id string, change func(*store.Request) error, tok *store.Token) (*store.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.changedRequest(id, change)
	if err != nil {
		return nil, err
	}
	if err := s.create(tok); err != nil {
		return nil, err
	}
	s.requests[id] = cloneRequest(r)
	return r, nil
}

// CreateFirst creates toks only while no token is bound to service.
func (s *Store) CreateFirst(_ context.Context, service string, toks []*store.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		if slices.Contains(t.Services, service) {
			return store.ErrConflict
		}
	}
	// Check every token before storing any, so a conflict creates nothing.
	ids, hashes := map[string]bool{}, map[string]bool{}
	for _, t := range toks {
		_, idTaken := s.tokens[t.ID]
		_, hashTaken := s.byHash[string(t.Hash)]
		if idTaken || hashTaken || ids[t.ID] || hashes[string(t.Hash)] {
			return store.ErrConflict
		}
		ids[t.ID], hashes[string(t.Hash)] = true, true
	}
	for _, t := range toks {
		s.tokens[t.ID] = t.Clone()
		s.byHash[string(t.Hash)] = t.ID
	}
	return nil
}

func cloneRequest(r *store.Request) *store.Request {
	c := *r
	c.Scopes = slices.Clone(r.Scopes)
	c.Services = slices.Clone(r.Services)
	c.CIDRs = slices.Clone(r.CIDRs)
	c.RequesterGroups = slices.Clone(r.RequesterGroups)
	return &c
}

// Interface guards
var (
	_ store.Backend           = (*Store)(nil)
	_ store.ChangeFeed        = (*Store)(nil)
	_ caddymodule.StoreModule = (*Module)(nil)
	_ caddyfile.Unmarshaler   = (*Module)(nil)
)
