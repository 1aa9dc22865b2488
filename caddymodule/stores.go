package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/internal/store/postgres"
	"github.com/tokengate/caddy-tokengate/store"
)

func init() {
	caddy.RegisterModule(BoltStore{})
}

// openStores shares store handles between configs. A reload provisions the
// new config before the old one is cleaned up, and bbolt locks its file:
// opening it a second time would block. With the pool, both configs hold
// the same handle and the last one to let go closes it.
var openStores = caddy.NewUsagePool()

type pooledStore struct{ store.Backend }

func (p pooledStore) Destruct() error { return p.Close() }

// boltLockTimeout bounds the wait for the bbolt file lock when another
// process holds it, so a second Caddy on the same file fails with a clear
// error instead of hanging.
const boltLockTimeout = 5 * time.Second

// BoltStore is the embedded default store, `tokengate.stores.bolt`: one
// bbolt file on local disk, for a single gateway node.
type BoltStore struct {
	// Path of the bbolt file. Default: tokengate/tokengate.db in Caddy's
	// data directory.
	Path string `json:"path,omitempty"`

	key   string
	store store.Backend
}

// CaddyModule returns the Caddy module information.
func (BoltStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tokengate.stores.bolt",
		New: func() caddy.Module { return new(BoltStore) },
	}
}

// Provision opens the file, or joins the handle an earlier config opened.
func (b *BoltStore) Provision(caddy.Context) error {
	path := b.Path
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), "tokengate", "tokengate.db")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("bolt store path %s: %v", path, err)
	}
	b.key = "bolt:" + abs
	val, _, err := openStores.LoadOrNew(b.key, func() (caddy.Destructor, error) {
		s, err := bolt.Open(abs, boltLockTimeout)
		if err != nil {
			return nil, err
		}
		return pooledStore{s}, nil
	})
	if err != nil {
		return err
	}
	b.store = val.(pooledStore).Backend
	return nil
}

// Store returns the opened store.
func (b *BoltStore) Store() store.Backend { return b.store }

// Cleanup lets go of this config's reference to the file.
func (b *BoltStore) Cleanup() error {
	if b.key == "" {
		return nil
	}
	_, err := openStores.Delete(b.key)
	return err
}

// Interface guards
var (
	_ caddy.Provisioner  = (*BoltStore)(nil)
	_ caddy.CleanerUpper = (*BoltStore)(nil)
	_ StoreModule        = (*BoltStore)(nil)
)

func init() {
	caddy.RegisterModule(PostgresStore{})
}

// PostgresStore is the shared store, `tokengate.stores.postgres`: several
// gateway nodes use one PostgreSQL database and learn of each other's token
// changes through LISTEN/NOTIFY.
type PostgresStore struct {
	// DSN of the database, e.g. postgres://user@host:5432/db. Placeholders
	// such as {env.DATABASE_URL} are expanded.
	DSN string `json:"dsn,omitempty"`

	key   string
	store store.Backend
}

// CaddyModule returns the Caddy module information.
func (PostgresStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tokengate.stores.postgres",
		New: func() caddy.Module { return new(PostgresStore) },
	}
}

// Provision connects (or joins the pool an earlier config opened) and
// migrates the schema.
func (p *PostgresStore) Provision(ctx caddy.Context) error {
	dsn := caddy.NewReplacer().ReplaceKnown(p.DSN, "")
	if dsn == "" {
		return fmt.Errorf("postgres store needs a dsn")
	}
	// The key is a digest, so the DSN (which may hold a password) is kept
	// out of any debug output of the pool.
	sum := sha256.Sum256([]byte(dsn))
	p.key = "postgres:" + hex.EncodeToString(sum[:])
	val, _, err := openStores.LoadOrNew(p.key, func() (caddy.Destructor, error) {
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return pooledStore{s}, nil
	})
	if err != nil {
		return err
	}
	p.store = val.(pooledStore).Backend
	return nil
}

// Store returns the connected store.
func (p *PostgresStore) Store() store.Backend { return p.store }

// Cleanup lets go of this config's reference to the pool.
func (p *PostgresStore) Cleanup() error {
	if p.key == "" {
		return nil
	}
	_, err := openStores.Delete(p.key)
	return err
}

// Interface guards
var (
	_ caddy.Provisioner  = (*PostgresStore)(nil)
	_ caddy.CleanerUpper = (*PostgresStore)(nil)
	_ StoreModule        = (*PostgresStore)(nil)
)
