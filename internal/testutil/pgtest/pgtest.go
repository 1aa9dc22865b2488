// Package pgtest connects tests to the PostgreSQL they run against: the
// URL in TOKENGATE_TEST_POSTGRES_URL, or the local default. When it cannot
// be reached the test is skipped with a clear message, except under
// CI=true, where that is a failure.
package pgtest

import (
	"cmp"
	"context"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the database the machine provides.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Connect returns the test database's URL and a connection to it, closed
// when the test ends. hint is appended to the message when it is
// unreachable (say, what the role must be allowed to do).
func Connect(tb testing.TB, hint string) (*url.URL, *pgx.Conn) {
	tb.Helper()
	raw := cmp.Or(os.Getenv("TOKENGATE_TEST_POSTGRES_URL"), DefaultURL)
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatalf("TOKENGATE_TEST_POSTGRES_URL must be a postgres:// URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, raw)
	if err != nil {
		msg := "PostgreSQL at " + u.Redacted() + " is unreachable (" + err.Error() + "); set TOKENGATE_TEST_POSTGRES_URL to a database these tests may use" + hint
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return u, conn
}
