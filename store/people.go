package store

import (
	"context"
	"time"
)

// Session is a person's signed-in browser session of the web console. It
// lives in the store, not in a node's memory, so that a person who signed
// in on one node of a cluster acts on any other, and signing out on one
// ends the session on all of them.
type Session struct {
	// IDHash is the SHA-256 of the session cookie's value. The value
	// itself is never stored: someone who reads the store cannot act as
	// the person.
	IDHash []byte `json:"-"`
	// Principal and Groups are the verified identity at sign-in: the ID
	// token's subject mapped as for the API, and its groups.
	Principal string    `json:"principal"`
	Groups    []string  `json:"groups,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// LastSeenAt moves with use (TouchSession); the idle timeout counts
	// from it.
	LastSeenAt time.Time `json:"last_seen_at"`
	// ExpiresAt is the absolute end, whatever the use.
	ExpiresAt time.Time `json:"expires_at"`
}

// SecurityKey is a WebAuthn credential a person registered for step-up.
// Credential is the library's serialised credential (public key,
// attestation, flags), opaque to the store; the store keeps what it must
// index and check atomically beside it.
type SecurityKey struct {
	// CredentialID is the authenticator's credential id, unique across
	// all people.
	CredentialID []byte    `json:"credential_id"`
	Principal    string    `json:"principal"`
	Name         string    `json:"name"`
	Credential   []byte    `json:"credential"`
	SignCount    uint32    `json:"sign_count"`
	CreatedAt    time.Time `json:"created_at"`
	LastUsedAt   time.Time `json:"last_used_at,omitzero"`
}

// PeopleStore keeps what the web console needs about people: their
// sessions and their security keys. A backend that implements it next to
// Backend can serve the console; every backend of this module does, and
// store/storetest checks it.
type PeopleStore interface {
	// CreateSession stores a new session. ErrConflict when its IDHash
	// exists.
	CreateSession(ctx context.Context, s *Session) error
	// GetSession returns the session whose cookie hashes to idHash, or
	// ErrNotFound. Expired sessions may still be returned: the caller
	// judges the timeouts, with its own clock.
	GetSession(ctx context.Context, idHash []byte) (*Session, error)
	// TouchSession moves the session's LastSeenAt forward to at (never
	// back). ErrNotFound when it does not exist.
	TouchSession(ctx context.Context, idHash []byte, at time.Time) error
	// DeleteSession ends one session; ErrNotFound when it does not exist.
	DeleteSession(ctx context.Context, idHash []byte) error
	// DeleteSessions ends every session of principal (signing out
	// everywhere, or a person leaving) and those that expired by now,
	// and says how many of principal's it ended.
	DeleteSessions(ctx context.Context, principal string, now time.Time) (int, error)

	// AddSecurityKey registers a key. ErrConflict when its CredentialID
	// is registered already, to this person or another.
	AddSecurityKey(ctx context.Context, k *SecurityKey) error
	// ListSecurityKeys returns principal's keys, oldest first.
	ListSecurityKeys(ctx context.Context, principal string) ([]*SecurityKey, error)
	// DeleteSecurityKey removes principal's key; ErrNotFound when
	// principal has no key with that id (someone else's key is not
	// found either).
	DeleteSecurityKey(ctx context.Context, principal string, credentialID []byte) error
	// UseSecurityKey records an assertion of principal's key: its new
	// signature counter and when. The check and the write are one
	// transaction: ErrConflict, changing nothing, when the key's stored
	// counter is not zero and signCount does not exceed it (a cloned
	// authenticator, or a replayed assertion, per WebAuthn's signature
	// counter rule); ErrNotFound when principal has no such key.
	UseSecurityKey(ctx context.Context, principal string, credentialID []byte, signCount uint32, at time.Time) (*SecurityKey, error)
}

// CounterAdvances is WebAuthn's signature counter rule (Level 2, 7.2 step
// 21), shared by the backends: an authenticator that keeps no counter
// reports zero every time; one that keeps one must report more than the
// last value seen.
func CounterAdvances(stored, next uint32) bool {
	if stored == 0 && next == 0 {
		return true
	}
	return next > stored
}
