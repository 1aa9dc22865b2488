package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/internal/store/postgres"
	"github.com/tokengate/caddy-tokengate/store"
)

func init() {
	caddy.RegisterModule(BoltStore{})
}

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

	abs string
}

// CaddyModule returns the Caddy module information.
func (BoltStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tokengate.stores.bolt",
		New: func() caddy.Module { return new(BoltStore) },
	}
}

// Provision resolves the file's path.
func (b *BoltStore) Provision(caddy.Context) error {
	path := b.Path
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), "tokengate", "tokengate.db")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("bolt store path %s: %v", path, err)
	}
	b.abs = abs
	return nil
}

// StoreKey is the file's absolute path.
func (b *BoltStore) StoreKey() string { return "bolt:" + b.abs }

// OpenStore returns the store without opening the file: `caddy validate`
// provisions the config but never starts it, and must not wait for the
// lock a running node holds. The app opens the file when it starts.
func (b *BoltStore) OpenStore(caddy.Context) (store.Backend, error) {
	return bolt.Deferred(b.abs, boltLockTimeout), nil
}

// UnmarshalCaddyfile reads `bolt [<path>]`, or the path in a block.
func (b *BoltStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		b.Path = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "path":
			if err := oneArg(d, &b.Path); err != nil {
				return err
			}
		default:
			return d.Errf("unrecognized bolt store subdirective %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*BoltStore)(nil)
	_ caddyfile.Unmarshaler = (*BoltStore)(nil)
	_ StoreModule           = (*BoltStore)(nil)
)

func init() {
	caddy.RegisterModule(PostgresStore{})
}

// PostgresStore is the shared store, `tokengate.stores.postgres`: several
// gateway nodes use one PostgreSQL database and learn of each other's token
// changes through LISTEN/NOTIFY.
type PostgresStore struct {
	// The options, inline in the module's JSON.
	postgres.Config

	opts postgres.Options // DSNs expanded
}

// CaddyModule returns the Caddy module information.
func (PostgresStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tokengate.stores.postgres",
		New: func() caddy.Module { return new(PostgresStore) },
	}
}

// Provision expands the DSN's placeholders and checks the options.
func (p *PostgresStore) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	opts, err := p.Options(func(s string) string { return repl.ReplaceKnown(s, "") })
	p.opts = opts
	return err
}

// StoreKey is a digest of the DSN, so the DSN (which may hold a password)
// is kept out of any debug output of the pool.
func (p *PostgresStore) StoreKey() string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%s\x00%d\x00%s", p.opts.DSN, p.opts.FeedDSN, p.MaxConns, p.QueryExecMode, p.Heartbeat, p.Feed))
	return "postgres:" + hex.EncodeToString(sum[:])
}

// OpenStore connects and migrates the schema.
func (p *PostgresStore) OpenStore(ctx caddy.Context) (store.Backend, error) {
	return postgres.OpenWith(ctx, p.opts)
}

// UnmarshalCaddyfile reads `postgres <dsn>`, or the DSN and the other
// options in a block (docs/caddyfile.md).
func (p *PostgresStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		p.DSN = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "dsn":
			err = oneArg(d, &p.DSN)
		case "feed_dsn":
			err = oneArg(d, &p.FeedDSN)
		case "max_conns":
			p.MaxConns, err = parsedArg(d, postgres.ParseMaxConns)
		case "query_exec_mode":
			// The name is kept, and parsed again when the store opens.
			_, err = parsedArg(d, postgres.ParseQueryExecMode)
			p.QueryExecMode = d.Val()
		case "feed":
			err = choiceArg(d, &p.Feed, postgres.Feeds...)
		case "heartbeat":
			err = durationInto(d, &p.Heartbeat, 0)
		default:
			err = d.Errf("unrecognized postgres store subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if p.DSN == "" {
		return d.ArgErr()
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*PostgresStore)(nil)
	_ caddyfile.Unmarshaler = (*PostgresStore)(nil)
	_ StoreModule           = (*PostgresStore)(nil)
)
