package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles holds the schema, one file per version, named
// NNNN_description.sql. Applied files must never change: add a new one.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the advisory lock key that serialises schema changes
// across every node sharing the database ("tokengat" in ASCII).
const migrationLock = 0x746f6b656e676174

// migrate applies, in version order, every migration the database lacks.
// It runs in one transaction holding migrationLock: nodes starting together
// wait for each other instead of racing to create the same tables, and a
// failed migration leaves no half-changed schema behind (PostgreSQL DDL is
// transactional).
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
			return fmt.Errorf("taking migration lock: %w", err)
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS tokengate_schema_migrations (
			version    integer     PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`)
		if err != nil {
			return fmt.Errorf("creating tokengate_schema_migrations: %w", err)
		}
		rows, _ := tx.Query(ctx, "SELECT version FROM tokengate_schema_migrations")
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return fmt.Errorf("reading applied migrations: %w", err)
		}
		for _, name := range names {
			version, err := migrationVersion(name)
			if err != nil {
				return err
			}
			if slices.Contains(applied, version) {
				continue
			}
			sql, err := migrationFiles.ReadFile(name)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return fmt.Errorf("applying %s: %w", name, err)
			}
			_, err = tx.Exec(ctx, "INSERT INTO tokengate_schema_migrations (version, name) VALUES ($1, $2)", version, path.Base(name))
			if err != nil {
				return fmt.Errorf("recording %s: %w", name, err)
			}
		}
		return nil
	})
}

// migrationVersion reads the number a migration file name starts with.
func migrationVersion(name string) (int32, error) {
	prefix, _, _ := strings.Cut(path.Base(name), "_")
	v, err := strconv.ParseInt(prefix, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("migration %s: name must start with a version number", name)
	}
	return int32(v), nil
}
