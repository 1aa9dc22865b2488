package postgres

import (
	"context"
	"testing"

	"github.com/tokengate/caddy-tokengate/store/storetest"
)

// A database created before holders were recorded gains the held_by
// column on the next start, its tokens reading as held by nobody (the
// admin policy then judges them by who created them), and new writes keep
// their holder.
func TestMigrationAddsHeldByToExistingTokens(t *testing.T) {
	t.Parallel()
	dsn := testDSN(t)
	ctx := context.Background()
	s := open(t, dsn)
	old := storetest.NewToken("alice")
	if err := s.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	// Back to the schema of version 2, the token still in it.
	if _, err := s.pool.Exec(ctx, `ALTER TABLE tokengate_tokens DROP COLUMN held_by;
		DELETE FROM tokengate_schema_migrations WHERE version = 3`); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, dsn)
	got, err := s.Get(ctx, old.ID)
	if err != nil || got.HeldBy != "" || got.Owner != "alice" {
		t.Fatalf("token from before the migration: %+v, %v", got, err)
	}
	next := storetest.NewToken("bob")
	next.HeldBy = "carol"
	if err := s.Create(ctx, next); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetByHash(ctx, next.Hash); err != nil || got.HeldBy != "carol" {
		t.Fatalf("token after the migration: %+v, %v", got, err)
	}
}
