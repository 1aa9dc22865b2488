package postgres

import (
	"context"
	"crypto/rand"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokengate/caddy-tokengate/internal/testutil/pgbouncer"
	"github.com/tokengate/caddy-tokengate/internal/testutil/pgtest"
	"github.com/tokengate/caddy-tokengate/store"
	"github.com/tokengate/caddy-tokengate/store/storetest"
)

// roleWithSchema creates a login role and a schema of the same name that
// it owns, dropped when the test ends. PostgreSQL's default search_path
// ("$user", public) then finds the schema without a startup parameter,
// which a pooler in transaction mode would not pass on.
func roleWithSchema(tb testing.TB) (role string, base *url.URL) {
	tb.Helper()
	u, admin := pgtest.Connect(tb, " (its role must be allowed to create roles)")
	role = "tg_bouncer_" + strings.ToLower(rand.Text()[:12])
	ctx := context.Background()
	for _, sql := range []string{"CREATE ROLE " + role + " LOGIN", "CREATE SCHEMA " + role + " AUTHORIZATION " + role} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			tb.Fatalf("%s: %v", sql, err)
		}
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u.String())
		if err != nil {
			tb.Error(err)
			return
		}
		defer conn.Close(ctx)
		for _, sql := range []string{
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" + role + "'",
			"DROP SCHEMA " + role + " CASCADE", "DROP ROLE " + role,
		} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				tb.Errorf("%s: %v", sql, err)
			}
		}
	})
	return role, u
}

// Lookups, writes and a polling change feed work through PgBouncer in
// transaction mode with query_exec_mode exec: nothing relies on session
// state or on statements prepared on one server connection and used on
// another. Two server connections serve eight concurrent callers, so
// consecutive statements of one caller land on different ones.
func TestThroughPgBouncerInTransactionMode(t *testing.T) {
	t.Parallel()
	role, base := roleWithSchema(t)
	bouncer := pgbouncer.Start(t, base, []string{role}, 2)
	bouncer.User = url.User(role)
	q := bouncer.Query()
	q.Set("sslmode", "disable")
	bouncer.RawQuery = q.Encode()

	ctx := context.Background()
	s, err := OpenWith(ctx, Options{DSN: bouncer.String(), MaxConns: 8, QueryExecMode: pgx.QueryExecModeExec, Feed: FeedOptions{Poll: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f := follow(t, s)

	toks := make([]*store.Token, 16)
	for i := range toks {
		toks[i] = storetest.NewToken("alice")
		toks[i].MaxUses = 100
		if err := s.Create(ctx, toks[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(toks))
	for w := range 8 {
		wg.Go(func() {
			for i, tok := range toks {
				if _, err := s.GetByHash(ctx, tok.Hash); err != nil {
					errs <- err
				}
				if _, err := s.ConsumeUse(ctx, tok.ID, store.Usage{TokenID: tok.ID, At: time.Now(), Scope: "svc:read"}); err != nil {
					errs <- err
				}
				if i%8 == w {
					if err := s.RecordUsage(ctx, []store.Usage{{TokenID: tok.ID, At: time.Now(), IP: "10.0.0.1"}}); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.Get(ctx, toks[0].ID)
	if err != nil || got.Uses != 8 {
		t.Fatalf("after 8 concurrent uses: %+v, %v; want 8 uses", got, err)
	}
	next := storetest.NewToken("alice")
	if _, err := s.Rotate(ctx, toks[1].ID, next, func(o *store.Token) error {
		o.RotatedTo = next.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	revoke(t, s, toks[2].ID)
	waitFor(t, 5*time.Second, "the polling feed names the rotation and the revoke", func() bool {
		a, _ := f.state(toks[1].ID)
		b, _ := f.state(toks[2].ID)
		return a > 0 && b > 0
	})
	if list, err := s.List(ctx, store.Filter{Owner: "alice"}); err != nil || len(list) != len(toks)+1 {
		t.Fatalf("List: %d tokens, %v; want %d", len(list), err, len(toks)+1)
	}
}
