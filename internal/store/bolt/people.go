package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokengate/caddy-tokengate/store"
)

var _ store.PeopleStore = (*Store)(nil)

// CreateSession stores s under its IDHash.
func (s *Store) CreateSession(_ context.Context, sess *store.Session) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(sessionsBucket)
		if b.Get(sess.IDHash) != nil {
			return store.ErrConflict
		}
		return putRecord(b, sess.IDHash, sess)
	})
}

// GetSession reads one session.
func (s *Store) GetSession(_ context.Context, idHash []byte) (*store.Session, error) {
	var sess *store.Session
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		sess, err = readSession(tx.Bucket(sessionsBucket), idHash)
		return err
	})
	return sess, err
}

// TouchSession moves LastSeenAt forward.
func (s *Store) TouchSession(_ context.Context, idHash []byte, at time.Time) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(sessionsBucket)
		sess, err := readSession(b, idHash)
		if err != nil {
			return err
		}
		if !at.After(sess.LastSeenAt) {
			return nil
		}
		sess.LastSeenAt = at
		return putRecord(b, idHash, sess)
	})
}

// DeleteSession removes one session.
func (s *Store) DeleteSession(_ context.Context, idHash []byte) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(sessionsBucket)
		if b.Get(idHash) == nil {
			return store.ErrNotFound
		}
		return b.Delete(idHash)
	})
}

// DeleteSessions removes principal's sessions and the expired ones, in
// one scan: a single node holds few enough sessions for that.
func (s *Store) DeleteSessions(_ context.Context, principal string, now time.Time) (int, error) {
	ended := 0
	err := s.update(func(tx *bbolt.Tx) error {
		ended = 0
		b := tx.Bucket(sessionsBucket)
		var doomed [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var sess store.Session
			if err := json.Unmarshal(v, &sess); err != nil {
				return err
			}
			switch {
			case sess.Principal == principal:
				ended++
				doomed = append(doomed, bytes.Clone(k))
			case !now.Before(sess.ExpiresAt):
				doomed = append(doomed, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return ended, err
}

// AddSecurityKey registers k under its credential id.
func (s *Store) AddSecurityKey(_ context.Context, k *store.SecurityKey) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(securityKeysBucket)
		if b.Get(k.CredentialID) != nil {
			return store.ErrConflict
		}
		return putRecord(b, k.CredentialID, k)
	})
}

// ListSecurityKeys returns principal's keys, oldest first.
func (s *Store) ListSecurityKeys(_ context.Context, principal string) ([]*store.SecurityKey, error) {
	var keys []*store.SecurityKey
	err := s.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(securityKeysBucket).ForEach(func(_, v []byte) error {
			var k store.SecurityKey
			if err := json.Unmarshal(v, &k); err != nil {
				return err
			}
			if k.Principal == principal {
				keys = append(keys, &k)
			}
			return nil
		})
	})
	slices.SortStableFunc(keys, func(a, b *store.SecurityKey) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return keys, err
}

// DeleteSecurityKey removes principal's key.
func (s *Store) DeleteSecurityKey(_ context.Context, principal string, credentialID []byte) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(securityKeysBucket)
		if _, err := readKey(b, principal, credentialID); err != nil {
			return err
		}
		return b.Delete(credentialID)
	})
}

// UseSecurityKey checks and advances the key's counter in one
// transaction.
func (s *Store) UseSecurityKey(_ context.Context, principal string, credentialID []byte, signCount uint32, at time.Time) (*store.SecurityKey, error) {
	var used *store.SecurityKey
	err := s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(securityKeysBucket)
		k, err := readKey(b, principal, credentialID)
		if err != nil {
			return err
		}
		if !store.CounterAdvances(k.SignCount, signCount) {
			return store.ErrConflict
		}
		k.SignCount, k.LastUsedAt = signCount, at
		used = k
		return putRecord(b, credentialID, k)
	})
	return used, err
}

func readSession(b *bbolt.Bucket, idHash []byte) (*store.Session, error) {
	v := b.Get(idHash)
	if v == nil {
		return nil, store.ErrNotFound
	}
	sess := &store.Session{IDHash: bytes.Clone(idHash)}
	return sess, json.Unmarshal(v, sess)
}

// readKey returns principal's key with that id; someone else's is not
// found.
func readKey(b *bbolt.Bucket, principal string, credentialID []byte) (*store.SecurityKey, error) {
	v := b.Get(credentialID)
	if v == nil {
		return nil, store.ErrNotFound
	}
	var k store.SecurityKey
	if err := json.Unmarshal(v, &k); err != nil {
		return nil, err
	}
	if k.Principal != principal {
		return nil, store.ErrNotFound
	}
	return &k, nil
}

// putRecord stores v as JSON under a binary key (putJSON's keys are ids).
func putRecord(b *bbolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}
