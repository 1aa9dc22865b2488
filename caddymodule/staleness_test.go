package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/jackc/pgx/v5"
)

func TestStalenessOptionsParse(t *testing.T) {
	t.Parallel()
	var a App
	in := "tokengate {\n max_staleness 5s\n stale_reads allow\n}"
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	if a.MaxStaleness != caddy.Duration(5*time.Second) || a.StaleReads != "allow" || a.maxStaleness() != 5*time.Second {
		t.Errorf("parsed max_staleness %v stale_reads %q", time.Duration(a.MaxStaleness), a.StaleReads)
	}
	if (&App{}).maxStaleness() != 2*time.Second {
		t.Error("max_staleness does not default to 2s")
	}
	for _, bad := range []string{"max_staleness 0s", "max_staleness soon", "stale_reads yes", "stale_reads", "max_staleness 1s 2s"} {
		var a App
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tokengate {\n " + bad + "\n}")); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPostgresStoreOptionsParse(t *testing.T) {
	t.Parallel()
	var p PostgresStore
	in := "postgres {\n dsn postgres://a@db/x\n feed_dsn postgres://a@direct/x\n max_conns 2\n query_exec_mode exec\n heartbeat 250ms\n feed poll\n}"
	if err := p.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	if err := p.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	if p.opts.FeedDSN != "postgres://a@direct/x" || p.MaxConns != 2 || p.opts.QueryExecMode != pgx.QueryExecModeExec ||
		time.Duration(p.Heartbeat) != 250*time.Millisecond || p.Feed != "poll" {
		t.Errorf("parsed %+v", p)
	}
	other := p
	other.MaxConns = 3
	if other.StoreKey() == p.StoreKey() || strings.Contains(p.StoreKey(), "postgres://") {
		t.Error("the store key must tell the options apart and never hold the DSN")
	}
	for _, bad := range []string{"max_conns 0", "max_conns many", "query_exec_mode prepared", "feed push", "heartbeat -1s", "pool 3"} {
		var p PostgresStore
		if err := p.UnmarshalCaddyfile(caddyfile.NewTestDispenser("postgres x {\n " + bad + "\n}")); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
