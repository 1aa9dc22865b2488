package benchdata

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokengate/caddy-tokengate/internal/store/postgres"
	"github.com/tokengate/caddy-tokengate/internal/testutil/benchtokens"
	"github.com/tokengate/caddy-tokengate/internal/testutil/pgtest"
)

// Schema is a PostgreSQL schema holding tokens for the benchmarks.
type Schema struct {
	// DSN connects with the schema as search_path (and application_name),
	// which is where postgres.Open finds its tables.
	DSN     string
	Name    string
	Secrets []string
	// Built is the whole build: schema, migration, generating the tokens,
	// CreateMany, VACUUM ANALYZE, reading it into shared buffers. Copied is
	// CreateMany alone.
	Built, Copied time.Duration
}

var (
	schemas = map[int]*Schema{}
	// created lists every schema PostgresSchema created, seeded or not,
	// with the URL of the database it is in, for Cleanup to drop.
	created [][2]string
)

// PostgresSchema returns a schema of the test database (see pgtest) holding
// n tokens, seeded on first use with one CreateMany and shared by every
// later caller in the process. Call Cleanup from TestMain to drop the
// schemas. When PostgreSQL is unreachable the caller is skipped, or failed
// under CI=true, as pgtest.Connect does: call it inside the sub-benchmark
// that needs it, so the others still run.
func PostgresSchema(tb testing.TB, n int) *Schema {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if s, ok := schemas[n]; ok {
		return s
	}
	u, admin := pgtest.Connect(tb, "; the PostgreSQL benchmarks create a schema of their own there")
	base := u.String()
	ctx := context.Background()
	start := time.Now()
	name := fmt.Sprintf("tg_bench_%d_%s", n, strings.ToLower(rand.Text()[:10]))
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		tb.Fatalf("creating schema %s: %v", name, err)
	}
	created = append(created, [2]string{base, name})
	q := u.Query()
	q.Set("search_path", name)
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	dsn := u.String()

	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	secrets, records := benchtokens.Tokens(n, time.Now())
	copyStart := time.Now()
	if err := s.CreateMany(ctx, records); err != nil {
		tb.Fatalf("seeding %d tokens into %s: %v", n, name, err)
	}
	copied := time.Since(copyStart)
	// A table this size in service has been vacuumed and analyzed by
	// autovacuum, and the pages lookups touch are in shared buffers; COPY
	// and VACUUM write through small rings of buffers, which leaves most
	// of it outside them (with 100,000 tokens a third of the lookups of a
	// 3,000-call run read a page from the kernel). Do both now rather than
	// while the benchmark runs.
	if _, err := admin.Exec(ctx, "VACUUM ANALYZE "+name+".tokengate_tokens"); err != nil {
		tb.Fatalf("vacuuming %s: %v", name, err)
	}
	if err := warm(ctx, admin, name); err != nil {
		tb.Fatalf("reading %s into shared buffers: %v", name, err)
	}
	sch := &Schema{DSN: dsn, Name: name, Secrets: secrets, Built: time.Since(start), Copied: copied}
	tb.Logf("seeded PostgreSQL schema %s with %d tokens in %s (CreateMany %s)",
		name, n, sch.Built.Round(time.Millisecond), copied.Round(time.Millisecond))
	schemas[n] = sch
	return sch
}

// warm reads the tokens table, its primary key and its hash index through
// index scans, which use shared buffers like lookups do (a sequential scan
// of a table over a quarter of shared_buffers would go through a ring).
func warm(ctx context.Context, conn *pgx.Conn, schema string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, q := range []string{
			"SET LOCAL enable_seqscan = off",
			"SET LOCAL enable_bitmapscan = off",
			"SET LOCAL enable_sort = off",
			"SET LOCAL search_path = " + schema,
			"SELECT sum(length(purpose)) FROM (SELECT purpose FROM tokengate_tokens ORDER BY id) t",
			"SELECT count(*) FROM (SELECT hash FROM tokengate_tokens ORDER BY hash) t",
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
}

// dropSchemas drops every schema PostgresSchema created. Called by Cleanup
// with mu held.
func dropSchemas() {
	for _, c := range created {
		base, name := c[0], c[1]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		conn, err := pgx.Connect(ctx, base)
		if err == nil {
			_, err = conn.Exec(ctx, "DROP SCHEMA "+name+" CASCADE")
			conn.Close(ctx)
		}
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchdata: dropping schema %s: %v\n", name, err)
		}
	}
	created, schemas = nil, map[int]*Schema{}
}
