// Package bolt is the embedded, single-node token store, kept in one bbolt
// file. Every write is an fsync'd bbolt transaction, so a token acknowledged
// to a caller survives a crash of the process.
package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/tokengate/caddy-tokengate/store"
)

var (
	tokensBucket = []byte("tokens")       // id -> JSON record
	hashesBucket = []byte("token_hashes") // secret hash -> id
	// management requests: id -> JSON record
	requestsBucket = []byte("requests")
	// usedBucket: hash of a one-time credential -> when its record
	// expires (RFC 3339).
	usedBucket = []byte("used_credentials")
	// console sessions: SHA-256 of the cookie -> JSON record
	sessionsBucket = []byte("console_sessions")
	// WebAuthn credentials: credential id -> JSON record
	securityKeysBucket = []byte("security_keys")
)

// Store is a store.Store backed by a bbolt file.
type Store struct {
	db     *bbolt.DB
	opened atomic.Pointer[bbolt.DB] // db, once open

	// A deferred store opens its file on first use (or Open); until then
	// db is nil and path and lockTimeout say what to open.
	mu          sync.Mutex
	path        string
	lockTimeout time.Duration
}

// Deferred returns a store of the file at path that opens it (as Open
// does) only on its first use or when Open is called. Caddy provisions a
// config, without starting it, to validate it; a store opened only when
// used lets `caddy validate` run beside the node that holds the file's
// exclusive lock, instead of waiting for it.
func Deferred(path string, lockTimeout time.Duration) *Store {
	return &Store{path: path, lockTimeout: lockTimeout}
}

// Open opens a deferred store's file now, so that a held lock or a bad
// file is reported when the node starts rather than on its first call. It
// does nothing once the file is open.
func (s *Store) Open() error {
	_, err := s.handle()
	return err
}

func (s *Store) handle() (*bbolt.DB, error) {
	// Every call passes here: once open, no lock is taken.
	if db := s.opened.Load(); db != nil {
		return db, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		opened, err := Open(s.path, s.lockTimeout)
		if err != nil {
			return nil, err
		}
		s.db = opened.db
		s.opened.Store(s.db)
	}
	return s.db, nil
}

func (s *Store) view(fn func(*bbolt.Tx) error) error {
	db, err := s.handle()
	if err != nil {
		return err
	}
	return db.View(fn)
}

func (s *Store) update(fn func(*bbolt.Tx) error) error {
	db, err := s.handle()
	if err != nil {
		return err
	}
	return db.Update(fn)
}

// Open opens (creating if needed) the bbolt file at path. bbolt holds an
// exclusive lock on the file; a second Open of the same file in another
// process waits up to lockTimeout and then fails rather than hang.
func Open(path string, lockTimeout time.Duration) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating directory for %s: %v", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout, MmapFlags: mmapFlags})
	if errors.Is(err, bberrors.ErrTimeout) {
		// bbolt says only "timeout"; what timed out is the wait for the
		// file's exclusive lock, which another node holds.
		return nil, fmt.Errorf("opening bolt store %s: the file is locked by another process (another Caddy using the same store?); a bolt file serves one node, use store postgres for several: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening bolt store %s: %v", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{tokensBucket, hashesBucket, requestsBucket, usedBucket, sessionsBucket, securityKeysBucket, budgetsBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising bolt store %s: %v", path, err)
	}
	s := &Store{db: db, path: path, lockTimeout: lockTimeout}
	s.opened.Store(db)
	return s, nil
}

// Path returns the file backing the store.
func (s *Store) Path() string { return s.path }

// Backup writes a consistent copy of the whole file to w while the store
// keeps serving: bbolt's read transaction sees one snapshot, and writers
// go on beside it. size is called first with the number of bytes that
// follow (so an HTTP answer can announce its length); the copy is a bolt
// file that Open reads as it is.
func (s *Store) Backup(w io.Writer, size func(int64)) error {
	return s.view(func(tx *bbolt.Tx) error {
		size(tx.Size())
		_, err := tx.WriteTo(w)
		return err
	})
}

func (s *Store) Create(_ context.Context, t *store.Token) error {
	return s.update(func(tx *bbolt.Tx) error { return create(tx, t) })
}

func create(tx *bbolt.Tx, t *store.Token) error {
	tokens, hashes := tx.Bucket(tokensBucket), tx.Bucket(hashesBucket)
	if tokens.Get([]byte(t.ID)) != nil || hashes.Get(t.Hash) != nil {
		return store.ErrConflict
	}
	if err := put(tokens, t); err != nil {
		return err
	}
	return hashes.Put(t.Hash, []byte(t.ID))
}

func (s *Store) Get(_ context.Context, id string) (*store.Token, error) {
	var t *store.Token
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		t, err = get(tx.Bucket(tokensBucket), id)
		return err
	})
	return t, err
}

func (s *Store) GetByHash(_ context.Context, hash []byte) (*store.Token, error) {
	var t *store.Token
	err := s.view(func(tx *bbolt.Tx) error {
		id := tx.Bucket(hashesBucket).Get(hash)
		if id == nil {
			return store.ErrNotFound
		}
		var err error
		t, err = get(tx.Bucket(tokensBucket), string(id))
		return err
	})
	return t, err
}

func (s *Store) Rekey(_ context.Context, oldHash, newHash []byte) (*store.Token, error) {
	var t *store.Token
	err := s.update(func(tx *bbolt.Tx) error {
		hashes := tx.Bucket(hashesBucket)
		id := hashes.Get(oldHash)
		if id == nil {
			return store.ErrNotFound
		}
		if hashes.Get(newHash) != nil {
			return store.ErrConflict
		}
		// Copied: id points into a page the delete below may reuse.
		tokenID := string(id)
		var err error
		t, err = update(tx.Bucket(tokensBucket), tokenID, func(t *store.Token) error {
			t.Hash = bytes.Clone(newHash)
			return nil
		})
		if err != nil {
			return err
		}
		if err := hashes.Delete(oldHash); err != nil {
			return err
		}
		return hashes.Put(newHash, []byte(tokenID))
	})
	return t, err
}

func (s *Store) List(_ context.Context, f store.Filter) ([]*store.Token, error) {
	var out []*store.Token
	err := s.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(tokensBucket).ForEach(func(_, v []byte) error {
			t := new(store.Token)
			if err := json.Unmarshal(v, t); err != nil {
				return fmt.Errorf("decoding token record: %v", err)
			}
			if f.Matches(t) {
				out = append(out, t)
			}
			return nil
		})
	})
	slices.SortStableFunc(out, func(a, b *store.Token) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, err
}

func (s *Store) Update(_ context.Context, id string, change func(*store.Token) error) (*store.Token, error) {
	var t *store.Token
	err := s.update(func(tx *bbolt.Tx) error {
		var err error
		t, err = update(tx.Bucket(tokensBucket), id, change)
		return err
	})
	return t, err
}

func (s *Store) Rotate(_ context.Context, oldID string, next *store.Token, change func(*store.Token) error) (*store.Token, error) {
	var old *store.Token
	err := s.update(func(tx *bbolt.Tx) error {
		var err error
		if old, err = update(tx.Bucket(tokensBucket), oldID, change); err != nil {
			return err
		}
		return create(tx, next)
	})
	return old, err
}

func (s *Store) ConsumeUse(_ context.Context, id string, u store.Usage) (*store.Token, error) {
	var t *store.Token
	// bbolt runs one write transaction at a time, which is what makes the
	// check-and-increment below atomic, across the rotation chain too.
	err := s.update(func(tx *bbolt.Tx) error {
		tokens := tx.Bucket(tokensBucket)
		var err error
		if t, err = get(tokens, id); err != nil {
			return err
		}
		holder, err := budgetHolder(tokens, t)
		if err != nil {
			return err
		}
		if holder.MaxUses > 0 && holder.Uses >= holder.MaxUses {
			return store.ErrUsesExhausted
		}
		holder.Uses++
		holder.Version++
		if holder.ID != t.ID {
			// The use was made with the old secret: the budget is spent
			// on the successor, the observation stays with the token
			// that made it.
			if err := put(tokens, holder); err != nil {
				return err
			}
		}
		store.ApplyUsage(t, u)
		return put(tokens, t)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// UpdateChain runs in one write transaction, and bbolt runs one at a
// time, so no rotation interleaves.
func (s *Store) UpdateChain(_ context.Context, id string, change func(*store.Token) (bool, error)) ([]*store.Token, error) {
	var changed []*store.Token
	err := s.update(func(tx *bbolt.Tx) error {
		tokens := tx.Bucket(tokensBucket)
		t, err := get(tokens, id)
		if err != nil {
			return err
		}
		for hops := 0; t.RotatedFrom != ""; hops++ {
			if hops == maxChain {
				return fmt.Errorf("token %s: rotation chain longer than %d tokens", id, maxChain)
			}
			if t, err = get(tokens, t.RotatedFrom); err != nil {
				return fmt.Errorf("token %s: a predecessor cannot be read: %v", id, err)
			}
		}
		for hops := 0; ; hops++ {
			if hops == maxChain {
				return fmt.Errorf("token %s: rotation chain longer than %d tokens", id, maxChain)
			}
			ok, err := change(t)
			if err != nil {
				return err
			}
			if ok {
				t.Version++
				if err := put(tokens, t); err != nil {
					return err
				}
				changed = append(changed, t)
			}
			if t.RotatedTo == "" {
				return nil
			}
			if t, err = get(tokens, t.RotatedTo); err != nil {
				return fmt.Errorf("token %s: a successor cannot be read: %v", id, err)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// MarkUsed checks and records key in one write transaction, and drops a
// few expired records while at it, so the bucket does not grow with every
// credential ever used.
func (s *Store) MarkUsed(_ context.Context, key []byte, expires, now time.Time) error {
	return s.update(func(tx *bbolt.Tx) error {
		used := tx.Bucket(usedBucket)
		if v := used.Get(key); v != nil {
			if until, err := time.Parse(time.RFC3339Nano, string(v)); err != nil || now.Before(until) {
				return store.ErrConflict
			}
		}
		if err := dropExpired(used, now, 16); err != nil {
			return err
		}
		return used.Put(key, []byte(expires.UTC().Format(time.RFC3339Nano)))
	})
}

// dropExpired deletes up to n records of b that expired by now.
func dropExpired(b *bbolt.Bucket, now time.Time, n int) error {
	var expired [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(expired) < n; k, v = c.Next() {
		if until, err := time.Parse(time.RFC3339Nano, string(v)); err == nil && !now.Before(until) {
			expired = append(expired, k)
		}
	}
	for _, k := range expired {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// maxChain bounds the walk along RotatedTo, so a damaged record that
// points back into its own chain fails the call instead of hanging it.
const maxChain = 1000

// budgetHolder returns the newest token of t's rotation chain (t itself
// when it was never rotated), which holds the chain's remaining uses.
func budgetHolder(tokens *bbolt.Bucket, t *store.Token) (*store.Token, error) {
	holder := t
	for hops := 0; holder.RotatedTo != ""; hops++ {
		if hops == maxChain {
			return nil, fmt.Errorf("token %s: rotation chain longer than %d tokens", t.ID, maxChain)
		}
		next, err := get(tokens, holder.RotatedTo)
		if err != nil {
			return nil, fmt.Errorf("token %s was rotated to %s, which cannot be read: %v", holder.ID, holder.RotatedTo, err)
		}
		holder = next
	}
	return holder, nil
}

func (s *Store) RecordUsage(_ context.Context, batch []store.Usage) error {
	if len(batch) == 0 {
		return nil
	}
	// In id order, so each token's record is decoded and written once for
	// all its observations (one per scope exercised), and the writes walk
	// the B+tree's pages in order.
	sorted := slices.Clone(batch)
	slices.SortStableFunc(sorted, func(a, b store.Usage) int { return strings.Compare(a.TokenID, b.TokenID) })
	return s.update(func(tx *bbolt.Tx) error {
		tokens := tx.Bucket(tokensBucket)
		for len(sorted) > 0 {
			n := 1
			for n < len(sorted) && sorted[n].TokenID == sorted[0].TokenID {
				n++
			}
			same := sorted[:n]
			sorted = sorted[n:]
			t, err := get(tokens, same[0].TokenID)
			if err == store.ErrNotFound {
				continue
			}
			if err != nil {
				return err
			}
			// No version bump: usage statistics never change a decision,
			// and bumping would empty the decision cache every flush.
			for _, u := range same {
				store.ApplyUsage(t, u)
			}
			if err := put(tokens, t); err != nil {
				return err
			}
		}
		return nil
	})
}

// Follow implements store.ChangeFeed: the process that holds the file
// makes every change, so nothing can pass this node by.
func (s *Store) Follow(ctx context.Context, f store.Follower) {
	f.CaughtUp(store.Forever)
	<-ctx.Done()
}

func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	return s.db.Close()
}

func get(b *bbolt.Bucket, id string) (*store.Token, error) {
	v := b.Get([]byte(id))
	if v == nil {
		return nil, store.ErrNotFound
	}
	t := new(store.Token)
	if err := json.Unmarshal(v, t); err != nil {
		return nil, fmt.Errorf("decoding token %s: %v", id, err)
	}
	return t, nil
}

func update(b *bbolt.Bucket, id string, change func(*store.Token) error) (*store.Token, error) {
	t, err := get(b, id)
	if err != nil {
		return nil, err
	}
	if err := change(t); err != nil {
		return nil, err
	}
	t.Version++
	return t, put(b, t)
}

func put(b *bbolt.Bucket, t *store.Token) error { return putJSON(b, t.ID, t) }

func (s *Store) CreateRequest(_ context.Context, r *store.Request) error {
	return s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(requestsBucket)
		if b.Get([]byte(r.ID)) != nil {
			return store.ErrConflict
		}
		return putJSON(b, r.ID, r)
	})
}

func (s *Store) GetRequest(_ context.Context, id string) (*store.Request, error) {
	var r *store.Request
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		r, err = getRequest(tx.Bucket(requestsBucket), id)
		return err
	})
	return r, err
}

func (s *Store) ListRequests(_ context.Context, status string) ([]*store.Request, error) {
	var out []*store.Request
	err := s.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(requestsBucket).ForEach(func(_, v []byte) error {
			r := new(store.Request)
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("decoding request record: %v", err)
			}
			if status == "" || r.Status == status {
				out = append(out, r)
			}
			return nil
		})
	})
	slices.SortStableFunc(out, func(a, b *store.Request) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, err
}

func (s *Store) UpdateRequest(_ context.Context, id string, change func(*store.Request) error) (*store.Request, error) {
	var r *store.Request
	err := s.update(func(tx *bbolt.Tx) error {
		var err error
		r, err = updateRequest(tx.Bucket(requestsBucket), id, change)
		return err
	})
	return r, err
}

func (s *Store) ClaimRequest(_ context.Context, id string, change func(*store.Request) error, tok *store.Token) (*store.Request, error) {
	var r *store.Request
	err := s.update(func(tx *bbolt.Tx) error {
		var err error
		if r, err = updateRequest(tx.Bucket(requestsBucket), id, change); err != nil {
			return err
		}
		return create(tx, tok)
	})
	return r, err
}

func (s *Store) CreateFirst(_ context.Context, service string, toks []*store.Token) error {
	return s.update(func(tx *bbolt.Tx) error {
		err := tx.Bucket(tokensBucket).ForEach(func(_, v []byte) error {
			t := new(store.Token)
			if err := json.Unmarshal(v, t); err != nil {
				return fmt.Errorf("decoding token record: %v", err)
			}
			if slices.Contains(t.Services, service) {
				return store.ErrConflict
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, t := range toks {
			if err := create(tx, t); err != nil {
				return err
			}
		}
		return nil
	})
}

func getRequest(b *bbolt.Bucket, id string) (*store.Request, error) {
	v := b.Get([]byte(id))
	if v == nil {
		return nil, store.ErrNotFound
	}
	r := new(store.Request)
	if err := json.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("decoding request %s: %v", id, err)
	}
	return r, nil
}

func updateRequest(b *bbolt.Bucket, id string, change func(*store.Request) error) (*store.Request, error) {
	r, err := getRequest(b, id)
	if err != nil {
		return nil, err
	}
	if err := change(r); err != nil {
		return nil, err
	}
	r.Version++
	return r, putJSON(b, r.ID, r)
}

func putJSON(b *bbolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %v", key, err)
	}
	return b.Put([]byte(key), data)
}

var (
	_ store.Store        = (*Store)(nil)
	_ store.RequestStore = (*Store)(nil)
	_ store.ChangeFeed   = (*Store)(nil)
)
