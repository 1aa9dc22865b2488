package postgres

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/duration"
)

// Config is the store as the operator configured it, before its
// placeholders are expanded; Options turns it into what OpenWith takes.
type Config struct {
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
	Heartbeat duration.Duration `json:"heartbeat,omitempty"`
	// Feed is how the change feed learns of changes: "listen" (default:
	// a connection of its own in LISTEN wakes it at once) or "poll" (it
	// reads through the pool every heartbeat, and the node needs no
	// connection beyond max_conns, through PgBouncer if need be).
	Feed string `json:"feed,omitempty"`
}

// Feeds are the ways the change feed may learn of changes (Config.Feed).
var Feeds = []string{"listen", "poll"}

// ParseMaxConns reads a max_conns value: a pool size of 1 or more.
func ParseMaxConns(s string) (int32, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("max_conns %q is not a number of 1 or more", s)
	}
	return int32(n), nil
}

// Options checks c and returns the options it opens the store with, its
// DSNs expanded by expand (the placeholders of the config's host).
func (c Config) Options(expand func(string) string) (Options, error) {
	o := Options{DSN: expand(c.DSN), FeedDSN: expand(c.FeedDSN), MaxConns: c.MaxConns}
	if o.DSN == "" {
		return Options{}, fmt.Errorf("postgres store needs a dsn")
	}
	if c.MaxConns < 0 {
		return Options{}, fmt.Errorf("postgres store max_conns %d: must be 1 or more", c.MaxConns)
	}
	if c.QueryExecMode != "" {
		mode, err := ParseQueryExecMode(c.QueryExecMode)
		if err != nil {
			return Options{}, fmt.Errorf("postgres store %v", err)
		}
		o.QueryExecMode = mode
	}
	// A misspelt feed is refused, not taken for the default.
	if c.Feed != "" && !slices.Contains(Feeds, c.Feed) {
		return Options{}, fmt.Errorf("postgres store feed %q: must be %s", c.Feed, strings.Join(Feeds, " or "))
	}
	o.Feed.Poll = c.Feed == "poll"
	if c.Heartbeat > 0 {
		o.Feed.Heartbeat, o.Feed.Deadline = time.Duration(c.Heartbeat), 2*time.Duration(c.Heartbeat)
	}
	return o, nil
}
