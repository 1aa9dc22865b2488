package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokengate/caddy-tokengate/internal/testutil/pgtest"
	"github.com/tokengate/caddy-tokengate/store"
	"github.com/tokengate/caddy-tokengate/store/storetest"
)

// testDSN creates a schema of its own for one test, dropped when the test
// ends, and returns a URL whose connections use it, so that parallel runs
// never see each other's tables. The schema name is also the connections'
// application_name, which lets a test find its own backends in
// pg_stat_activity.
func testDSN(tb testing.TB) string {
	tb.Helper()
	u, admin := pgtest.Connect(tb, "")
	base := u.String()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	schema := "tg_test_" + strings.ToLower(rand.Text())
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("creating test schema: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// open opens a store that is closed when the test ends.
func open(tb testing.TB, dsn string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, storetest.Backend{
		New: func(t *testing.T) store.Backend { return open(t, testDSN(t)) },
		Reopen: func(t *testing.T, s store.Backend) store.Backend {
			dsn := s.(*Store).pool.Config().ConnString()
			s.Close()
			return open(t, dsn)
		},
	})
}

func TestTimesRoundTripInUTC(t *testing.T) {
	t.Parallel()
	s := open(t, testDSN(t))
	ctx := context.Background()
	at := time.Date(2031, 3, 4, 5, 6, 7, 123456000, time.FixedZone("UTC+2", 2*60*60))
	tok := storetest.NewToken("alice")
	tok.NotBefore, tok.CreatedAt, tok.RevokedAt = at, at.Add(time.Microsecond), at.Add(-time.Microsecond)
	tok.GraceUntil = time.Time{}
	if err := s.Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2]time.Time{
		"not_before":  {got.NotBefore, tok.NotBefore},
		"created_at":  {got.CreatedAt, tok.CreatedAt},
		"revoked_at":  {got.RevokedAt, tok.RevokedAt},
		"grace_until": {got.GraceUntil, tok.GraceUntil},
	} {
		if !pair[0].Equal(pair[1]) || (!pair[0].IsZero() && pair[0].Location() != time.UTC) {
			t.Errorf("%s = %v, want %v in UTC", name, pair[0], pair[1])
		}
	}
	if !got.GraceUntil.IsZero() {
		t.Errorf("zero grace_until came back as %v", got.GraceUntil)
	}
}

// The SQL that folds usage into a row must agree with store.ApplyUsage,
// which the bolt store runs in Go, for batches and for ConsumeUse alike.
func TestUsageMatchesApplyUsage(t *testing.T) {
	t.Parallel()
	s := open(t, testDSN(t))
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond)
	a, b := storetest.NewToken("alice"), storetest.NewToken("bob")
	want := map[string]*store.Token{}
	for _, tok := range []*store.Token{a, b} {
		if err := s.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
		want[tok.ID] = tok.Clone()
	}
	batch := []store.Usage{
		{TokenID: b.ID, At: base.Add(2 * time.Second), IP: "10.0.0.2", Scope: "search:read"},
		{TokenID: a.ID, At: base, IP: "10.0.0.1", Scope: "billing:write"},
		{TokenID: a.ID, At: base, IP: "10.0.0.9", Scope: "Billing:read"}, // same time: the first one stays
		{TokenID: b.ID, At: base, IP: "10.0.0.3", Scope: "billing:read"}, // older: address stays
		{TokenID: a.ID, IP: "10.0.0.8"},                                  // no time, no scope
		{TokenID: a.ID, At: base.Add(time.Second), IP: "10.0.0.4", Scope: "billing:write"},
		{TokenID: "tok_unknown", At: base, IP: "10.0.0.5", Scope: "x"},
	}
	if err := s.RecordUsage(ctx, batch); err != nil {
		t.Fatal(err)
	}
	consumed := []store.Usage{
		{TokenID: a.ID, At: base.Add(-time.Second), IP: "10.0.0.6", Scope: "billing:admin"},
		{TokenID: b.ID, At: base.Add(3 * time.Second), IP: "10.0.0.7", Scope: "billing:read"},
	}
	for _, u := range consumed {
		if _, err := s.ConsumeUse(ctx, u.TokenID, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range append(batch, consumed...) {
		if w := want[u.TokenID]; w != nil {
			store.ApplyUsage(w, u)
		}
	}
	for id, w := range want {
		got, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !got.LastUsedAt.Equal(w.LastUsedAt) || got.LastUsedIP != w.LastUsedIP || !slices.Equal(got.UsedScopes, w.UsedScopes) {
			t.Errorf("%s: last used %v from %q, scopes %q; ApplyUsage gives %v from %q, scopes %q",
				w.Owner, got.LastUsedAt, got.LastUsedIP, got.UsedScopes, w.LastUsedAt, w.LastUsedIP, w.UsedScopes)
		}
	}
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	const nodes = 4
	start := make(chan struct{})
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			<-start
			s, err := Open(context.Background(), dsn)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}

	s := open(t, dsn)
	var rows, versions int
	err := s.pool.QueryRow(context.Background(),
		"SELECT count(*), count(DISTINCT version) FROM tokengate_schema_migrations").Scan(&rows, &versions)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := fs.Glob(migrationFiles, "migrations/*.sql")
	if rows != len(files) || versions != len(files) {
		t.Fatalf("%d migration rows for %d versions, want one for each of %d files", rows, versions, len(files))
	}
}

// watcher records what Watch reports.
type watcher struct {
	changed chan string
	resets  chan struct{}
}

// watch runs s.Watch until the test ends and returns once it is listening.
func watch(t *testing.T, s *Store) *watcher {
	w := &watcher{changed: make(chan string, 100), resets: make(chan struct{}, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx,
			func(id string) {
				select {
				case w.changed <- id:
				case <-ctx.Done():
				}
			},
			func() {
				select {
				case w.resets <- struct{}{}:
				case <-ctx.Done():
				}
			})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	w.waitReset(t) // the first reset comes once LISTEN is in place
	return w
}

func (w *watcher) waitReset(t *testing.T) {
	t.Helper()
	select {
	case <-w.resets:
	case <-time.After(10 * time.Second):
		t.Fatal("reset was not called")
	}
}

// next returns whichever of ids is announced first, failing after a
// second. Other ids, from tests running in parallel against the same
// database, are skipped.
func (w *watcher) next(t *testing.T, ids ...string) string {
	t.Helper()
	timeout := time.After(time.Second)
	for {
		select {
		case id := <-w.changed:
			for _, want := range ids {
				if id == want {
					return id
				}
			}
		case <-timeout:
			t.Fatalf("no notification for %v within 1s", ids)
		}
	}
}

func TestWatchSeesChangesFromOtherNodes(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	a, b := open(t, dsn), open(t, dsn)
	w := watch(t, a)
	ctx := context.Background()

	rolledBack, revoked := storetest.NewToken("bob"), storetest.NewToken("alice")
	for _, tok := range []*store.Token{rolledBack, revoked} {
		if err := b.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	// A change that fails is rolled back, and so is its notification;
	// notifications arrive in commit order, so it would come first.
	refused := errors.New("refused")
	if _, err := b.Update(ctx, rolledBack.ID, func(*store.Token) error { return refused }); !errors.Is(err, refused) {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, revoked.ID, func(t *store.Token) error {
		t.RevokedAt, t.RevokedBy, t.RevokeReason = time.Now(), "security", "leaked"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := w.next(t, rolledBack.ID, revoked.ID); got != revoked.ID {
		t.Fatalf("notified %s, whose change was rolled back", got)
	}

	next := storetest.NewToken("bob")
	next.MaxUses = 1
	if _, err := b.Rotate(ctx, rolledBack.ID, next, func(o *store.Token) error {
		o.RotatedTo = next.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	w.next(t, rolledBack.ID)

}
