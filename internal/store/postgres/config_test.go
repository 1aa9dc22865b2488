package postgres

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The module's JSON reads into Options as the store opens with them: the
// DSNs expanded, the statement mode parsed, the feed's heartbeat and the
// deadline of twice it; what cannot work is refused before connecting.
func TestConfigOptions(t *testing.T) {
	var c Config
	in := `{"dsn":"{env.DB}","feed_dsn":"postgres://a@direct/x","max_conns":2,"query_exec_mode":"exec","heartbeat":"250ms","feed":"poll"}`
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	expand := func(s string) string { return strings.ReplaceAll(s, "{env.DB}", "postgres://a@db/x") }
	o, err := c.Options(expand)
	if err != nil {
		t.Fatal(err)
	}
	want := Options{DSN: "postgres://a@db/x", FeedDSN: "postgres://a@direct/x", MaxConns: 2, QueryExecMode: pgx.QueryExecModeExec,
		Feed: FeedOptions{Heartbeat: 250 * time.Millisecond, Deadline: 500 * time.Millisecond, Poll: true}}
	if o != want {
		t.Errorf("options %+v, want %+v", o, want)
	}
	if o, err := (Config{DSN: "x"}).Options(expand); err != nil || o.Feed != (FeedOptions{}) {
		t.Errorf("defaults: %+v %v, want zero feed options (FeedFor of the bound)", o, err)
	}
	for bad, wantErr := range map[Config]string{
		{}:                                    "postgres store needs a dsn",
		{DSN: "x", MaxConns: -1}:              "postgres store max_conns -1: must be 1 or more",
		{DSN: "x", QueryExecMode: "prepared"}: "postgres store query_exec_mode \"prepared\"",
		{DSN: "x", Feed: "pol"}:               "postgres store feed \"pol\": must be listen or poll",
	} {
		if _, err := bad.Options(expand); err == nil || !strings.HasPrefix(err.Error(), wantErr) {
			t.Errorf("%+v: %v, want %q", bad, err, wantErr)
		}
	}
}
