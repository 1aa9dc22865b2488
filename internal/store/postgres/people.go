package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tokengate/caddy-tokengate/store"
)

var _ store.PeopleStore = (*Store)(nil)

// CreateSession stores a new console session.
func (s *Store) CreateSession(ctx context.Context, sess *store.Session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO tokengate_console_sessions
		(id_hash, principal, person_groups, created_at, last_seen_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		sess.IDHash, sess.Principal, notNull(sess.Groups), sess.CreatedAt, sess.LastSeenAt, sess.ExpiresAt)
	return storeErr(err, "creating a console session")
}

// GetSession reads one session.
func (s *Store) GetSession(ctx context.Context, idHash []byte) (*store.Session, error) {
	sess := &store.Session{IDHash: idHash}
	err := s.pool.QueryRow(ctx, `SELECT principal, person_groups, created_at, last_seen_at, expires_at
		FROM tokengate_console_sessions WHERE id_hash = $1`, idHash).
		Scan(&sess.Principal, &sess.Groups, &sess.CreatedAt, &sess.LastSeenAt, &sess.ExpiresAt)
	if err != nil {
		return nil, storeErr(err, "reading a console session")
	}
	sess.CreatedAt, sess.LastSeenAt, sess.ExpiresAt = sess.CreatedAt.UTC(), sess.LastSeenAt.UTC(), sess.ExpiresAt.UTC()
	if len(sess.Groups) == 0 {
		sess.Groups = nil
	}
	return sess, nil
}

// TouchSession moves LastSeenAt forward; GREATEST keeps a slower node's
// older time from moving it back.
func (s *Store) TouchSession(ctx context.Context, idHash []byte, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE tokengate_console_sessions
		SET last_seen_at = GREATEST(last_seen_at, $2) WHERE id_hash = $1`, idHash, at)
	if err != nil {
		return storeErr(err, "touching a console session")
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// DeleteSession ends one session.
func (s *Store) DeleteSession(ctx context.Context, idHash []byte) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM tokengate_console_sessions WHERE id_hash = $1`, idHash)
	if err != nil {
		return storeErr(err, "ending a console session")
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// DeleteSessions ends principal's sessions and the expired ones, in one
// transaction.
func (s *Store) DeleteSessions(ctx context.Context, principal string, now time.Time) (int, error) {
	ended := 0
	err := s.inTx(ctx, "ending console sessions", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM tokengate_console_sessions WHERE principal = $1`, principal)
		if err != nil {
			return storeErr(err, "ending "+principal+"'s console sessions")
		}
		ended = int(tag.RowsAffected())
		_, err = tx.Exec(ctx, `DELETE FROM tokengate_console_sessions WHERE expires_at <= $1`, now)
		return storeErr(err, "dropping expired console sessions")
	})
	return ended, err
}

// AddSecurityKey registers a key; the credential id is the primary key, so
// a second registration of it, by anyone, is a conflict.
func (s *Store) AddSecurityKey(ctx context.Context, k *store.SecurityKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO tokengate_security_keys
		(credential_id, principal, name, credential, sign_count, created_at, last_used_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.CredentialID, k.Principal, k.Name, k.Credential, int64(k.SignCount), k.CreatedAt, nullable(k.LastUsedAt))
	return storeErr(err, "registering a security key")
}

const keyColumns = `credential_id, principal, name, credential, sign_count, created_at, last_used_at`

// ListSecurityKeys returns principal's keys, oldest first.
func (s *Store) ListSecurityKeys(ctx context.Context, principal string) ([]*store.SecurityKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyColumns+` FROM tokengate_security_keys
		WHERE principal = $1 ORDER BY created_at, credential_id`, principal)
	if err != nil {
		return nil, storeErr(err, "listing security keys")
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.SecurityKey, error) { return scanKey(row) })
	return keys, storeErr(err, "listing security keys")
}

// DeleteSecurityKey removes principal's key.
func (s *Store) DeleteSecurityKey(ctx context.Context, principal string, credentialID []byte) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM tokengate_security_keys WHERE credential_id = $1 AND principal = $2`, credentialID, principal)
	if err != nil {
		return storeErr(err, "removing a security key")
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// UseSecurityKey advances the counter under the row's lock, so of two
// nodes verifying one assertion at once only the first records it.
func (s *Store) UseSecurityKey(ctx context.Context, principal string, credentialID []byte, signCount uint32, at time.Time) (*store.SecurityKey, error) {
	var used *store.SecurityKey
	err := s.inTx(ctx, "recording a security key's use", func(tx pgx.Tx) error {
		k, err := scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+` FROM tokengate_security_keys
			WHERE credential_id = $1 AND principal = $2 FOR UPDATE`, credentialID, principal))
		if err != nil {
			return storeErr(err, "reading a security key")
		}
		if !store.CounterAdvances(k.SignCount, signCount) {
			return store.ErrConflict
		}
		_, err = tx.Exec(ctx, `UPDATE tokengate_security_keys SET sign_count = $2, last_used_at = $3
			WHERE credential_id = $1`, credentialID, int64(signCount), at)
		if err != nil {
			return storeErr(err, "recording a security key's use")
		}
		k.SignCount, k.LastUsedAt = signCount, at
		used = k
		return nil
	})
	return used, err
}

func scanKey(row pgx.Row) (*store.SecurityKey, error) {
	var k store.SecurityKey
	var count int64
	var created, lastUsed pgtype.Timestamptz
	if err := row.Scan(&k.CredentialID, &k.Principal, &k.Name, &k.Credential, &count, &created, &lastUsed); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, store.ErrNotFound
		}
		return nil, err
	}
	k.SignCount = uint32(count)
	k.CreatedAt, k.LastUsedAt = utc(created), utc(lastUsed)
	return &k, nil
}
