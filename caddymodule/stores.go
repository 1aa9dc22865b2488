package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/jackc/pgx/v5"

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

// UnmarshalCaddyfile reads `bolt [<path>]`, or the path in a block:
//
//	bolt {
//		path <path>
//	}
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
			if !d.AllArgs(&b.Path) {
				return d.ArgErr()
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
	// DSN of the database, e.g. postgres://user@host:5432/db. Placeholders
	// such as {env.DATABASE_URL} are expanded.
	DSN string `json:"dsn,omitempty"`
	// FeedDSN is where the change feed keeps its own session (LISTEN),
	// when DSN points at a pooler in transaction mode. Default DSN.
	FeedDSN string `json:"feed_dsn,omitempty"`
	// MaxConns bounds the connection pool for lookups and writes; the
	// feed's connection comes on top. Default 4.
	MaxConns int32 `json:"max_conns,omitempty"`
	// QueryExecMode is how statements are sent: cache_statement (pgx's
	// default, prepared statements), cache_describe, describe_exec, exec
	// or simple_protocol. exec and simple_protocol prepare nothing that
	// outlives a transaction, as PgBouncer in transaction mode needs.
	QueryExecMode string `json:"query_exec_mode,omitempty"`
	// Heartbeat is how often the change feed confirms that the node is
	// current when no change woke it; keep it at most a quarter of
	// max_staleness. Default 500ms.
	Heartbeat caddy.Duration `json:"heartbeat,omitempty"`
	// Feed is how the change feed learns of changes: "listen" (default:
	// a connection of its own in LISTEN wakes it at once) or "poll" (it
	// reads through the pool every heartbeat, and the node needs no
	// connection beyond max_conns, through PgBouncer if need be).
	Feed string `json:"feed,omitempty"`

	dsn, feedDSN string // expanded
	execMode     pgx.QueryExecMode
}

// CaddyModule returns the Caddy module information.
func (PostgresStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tokengate.stores.postgres",
		New: func() caddy.Module { return new(PostgresStore) },
	}
}

// Provision expands the DSN's placeholders.
func (p *PostgresStore) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	p.dsn = repl.ReplaceKnown(p.DSN, "")
	if p.dsn == "" {
		return fmt.Errorf("postgres store needs a dsn")
	}
	p.feedDSN = repl.ReplaceKnown(p.FeedDSN, "")
	if p.MaxConns < 0 {
		return fmt.Errorf("postgres store max_conns %d: must be 1 or more", p.MaxConns)
	}
	if p.QueryExecMode != "" {
		mode, err := postgres.ParseQueryExecMode(p.QueryExecMode)
		if err != nil {
			return fmt.Errorf("postgres store %v", err)
		}
		p.execMode = mode
	}
	return nil
}

// StoreKey is a digest of the DSN, so the DSN (which may hold a password)
// is kept out of any debug output of the pool.
func (p *PostgresStore) StoreKey() string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%s\x00%d\x00%s", p.dsn, p.feedDSN, p.MaxConns, p.QueryExecMode, p.Heartbeat, p.Feed))
	return "postgres:" + hex.EncodeToString(sum[:])
}

// OpenStore connects and migrates the schema.
func (p *PostgresStore) OpenStore(ctx caddy.Context) (store.Backend, error) {
	feed := postgres.FeedOptions{Poll: p.Feed == "poll"}
	if p.Heartbeat > 0 {
		feed.Heartbeat, feed.Deadline = time.Duration(p.Heartbeat), 2*time.Duration(p.Heartbeat)
	}
	return postgres.OpenWith(ctx, postgres.Options{
		DSN: p.dsn, FeedDSN: p.feedDSN, MaxConns: p.MaxConns, QueryExecMode: p.execMode, Feed: feed,
	})
}

// UnmarshalCaddyfile reads `postgres <dsn>`, or the DSN in a block:
//
//	postgres [<dsn>] {
//		dsn <dsn>
//		feed_dsn <dsn>              # default dsn; a session of its own (LISTEN)
//		max_conns <n>               # pool size, default 4; the feed's connection comes on top
//		query_exec_mode <mode>      # exec or simple_protocol behind PgBouncer in transaction mode
//		heartbeat <duration>        # default 500ms; at most max_staleness/4
//		feed listen|poll            # default listen; poll needs no connection beyond max_conns
//	}
func (p *PostgresStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		p.DSN = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "dsn":
			if !d.AllArgs(&p.DSN) {
				return d.ArgErr()
			}
		case "feed_dsn":
			if !d.AllArgs(&p.FeedDSN) {
				return d.ArgErr()
			}
		case "max_conns":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < 1 {
				return d.Errf("max_conns %q is not a number of 1 or more", v)
			}
			p.MaxConns = int32(n)
		case "query_exec_mode":
			if !d.AllArgs(&p.QueryExecMode) {
				return d.ArgErr()
			}
			if _, err := postgres.ParseQueryExecMode(p.QueryExecMode); err != nil {
				return d.Err(err.Error())
			}
		case "feed":
			if !d.AllArgs(&p.Feed) {
				return d.ArgErr()
			}
			if p.Feed != "listen" && p.Feed != "poll" {
				return d.Errf("feed must be listen or poll, not %q", p.Feed)
			}
		case "heartbeat":
			dur, err := durationArg(d, 0)
			if err != nil {
				return err
			}
			p.Heartbeat = dur
		default:
			return d.Errf("unrecognized postgres store subdirective %q", d.Val())
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
