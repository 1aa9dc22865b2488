package memstore

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

var _ store.PeopleStore = (*Store)(nil)

// people keeps console sessions and security keys under a lock of their
// own: they never take part in a token's transaction.
type people struct {
	peopleMu sync.Mutex
	sessions map[string]store.Session     // by SHA-256 of the cookie
	keys     map[string]store.SecurityKey // by credential id
}

func newPeople() people {
	return people{sessions: map[string]store.Session{}, keys: map[string]store.SecurityKey{}}
}

// CreateSession stores a new session.
func (p *people) CreateSession(_ context.Context, s *store.Session) error {
	p.peopleMu.Lock()
	defer p.peopleMu.Unlock()
	if _, ok := p.sessions[string(s.IDHash)]; ok {
		return store.ErrConflict
	}
	c := *s
	c.IDHash, c.Groups = slices.Clone(s.IDHash), slices.Clone(s.Groups)
	p.sessions[string(s.IDHash)] = c
	return nil
}

// GetSession returns a copy of one session.
func (p *people) GetSession(_ context.Context, idHash []byte) (*store.Session, error) {
	p.peopleMu.Lock()
	defer p.peopleMu.Unlock()
	s, ok := p.sessions[string(idHash)]
	if !ok {
		return nil, store.ErrNotFound
	}
	s.IDHash, s.Groups = slices.Clone(s.IDHash), slices.Clone(s.Groups)
	return &s, nil
}

// TouchSession moves LastSeenAt forward.
func (p *people) TouchSession(_ context.Context, idHash []byte, at time.Time) error {
	p.peopleMu.Lock()
	defer p.peopleMu.Unlock()
	s, ok := p.sessions[string(idHash)]
	if !ok {
		return store.ErrNotFound
	}
	if at.After(s.LastSeenAt) {
		s.LastSeenAt = at
		p.sessions[string(idHash)] = s
	}
	return nil
}

// DeleteSession ends one session.
func (p *people) DeleteSession(_ context.Context, idHash []byte) error {
	p.peopleMu.Lock()
	defer p.peopleMu.Unlock()
	if _, ok := p.sessions[string(idHash)]; !ok {
		return store.ErrNotFound
	}
	delete(p.sessions, string(idHash))
	return nil
}

// DeleteSessions ends principal's sessions and the expired ones.
func (p *people) DeleteSessions(_ context.Context, principal string, now time.Time) (int, error) {
	p.peopleMu.Lock()
	defer p.peopleMu.Unlock()
	ended := 0
	for k, s := range p.sessions {
		switch {
		case s.Principal == principal:
			ended++
			delete(p.sessions, k)
		case !now.Before(s.ExpiresAt):
			delete(p.sessions, k)
		}
	}
	return ended, nil
}

// AddSecurityKey registers a key.
func (p *people) AddSecurityKey(_ context.Context, k *store.SecurityKey) error {
	p.peopleMu.Lock()
	defer p.peopleMu.Unlock()
	if _, ok := p.keys[string(k.CredentialID)]; ok {
		return store.ErrConflict
	}
	c := *k
	c.CredentialID, c.Credential = slices.Clone(k.CredentialID), slices.Clone(k.Credential)
	p.keys[string(k.CredentialID)] = c
	return nil
}

// ListSecurityKeys returns copies of principal's keys, oldest first.
func (p *people) ListSecurityKeys(_ context.Context, principal string) ([]*store.SecurityKey, error) {
	p.peopleMu.Lock()
	defer p.peopleMu.Unlock()
	var keys []*store.SecurityKey
	for _, k := range p.keys {
		if k.Principal == principal {
			k.CredentialID, k.Credential = slices.Clone(k.CredentialID), slices.Clone(k.Credential)
			keys = append(keys, &k)
		}
	}
	slices.SortFunc(keys, func(a, b *store.SecurityKey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return slices.Compare(a.CredentialID, b.CredentialID)
	})
	return keys, nil
}

// DeleteSecurityKey removes principal's key.
func (p *people) DeleteSecurityKey(_ context.Context, principal string, credentialID []byte) error {
	p.peopleMu.Lock()
	defer p.peopleMu.Unlock()
	if k, ok := p.keys[string(credentialID)]; !ok || k.Principal != principal {
		return store.ErrNotFound
	}
	delete(p.keys, string(credentialID))
	return nil
}

// UseSecurityKey checks and advances the key's counter under the lock.
func (p *people) UseSecurityKey(_ context.Context, principal string, credentialID []byte, signCount uint32, at time.Time) (*store.SecurityKey, error) {
	p.peopleMu.Lock()
	defer p.peopleMu.Unlock()
	k, ok := p.keys[string(credentialID)]
	if !ok || k.Principal != principal {
		return nil, store.ErrNotFound
	}
	if !store.CounterAdvances(k.SignCount, signCount) {
		return nil, store.ErrConflict
	}
	k.SignCount, k.LastUsedAt = signCount, at
	p.keys[string(credentialID)] = k
	k.CredentialID, k.Credential = slices.Clone(k.CredentialID), slices.Clone(k.Credential)
	return &k, nil
}
