package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/store"
)

func backupCommand() *cobra.Command {
	var output string
	cmd := command(&cobra.Command{
		Use:   "backup --output FILE",
		Short: "Copies the running node's bolt store to FILE, while it serves (local only)",
		Long: `Copies the running node's bolt token store to FILE through Caddy's admin
endpoint, while the node keeps serving (one bbolt read transaction: a
consistent snapshot). The copy is written with mode 0600 beside FILE,
opened as a bolt store to check it, and only then renamed to FILE. Each
backup writes a store.backup audit line; while audit lines cannot be
written the node refuses (503 audit_unavailable).

To restore, stop Caddy, put the copy where the store option points, and
start Caddy. A PostgreSQL store is backed up with pg_dump instead; see
docs/backup-restore.md.`,
		Example: `  caddy tokengate backup --output /var/backups/tokengate-$(date +%F).db
  caddy tokengate backup --output tokens.db.bak --address unix//run/caddy/admin.sock`,
		Args: cobra.NoArgs,
	}, localOnly, func(ctx context.Context, cl *api.Client, _ []string) (backupResult, error) {
		return backup(ctx, cl, output)
	}, func(res backupResult, _ []string) error {
		fmt.Fprintf(os.Stderr, "backed up %d bytes (%d tokens) to %s\n", res.Bytes, res.Tokens, show(res.File))
		return nil
	})
	cmd.Flags().StringVar(&output, "output", "", "file to write the copy to (required)")
	return cmd
}

type backupResult struct {
	File   string `json:"file"`
	Bytes  int64  `json:"bytes"`
	Tokens int    `json:"tokens"`
}

// backup writes the node's store to a temporary file beside output,
// checks that it opens as a bolt store, and renames it to output, so
// output is never a partial copy.
func backup(ctx context.Context, cl *api.Client, output string) (backupResult, error) {
	if output == "" {
		return backupResult{}, errors.New("name the file to write with --output FILE")
	}
	tmp, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*")
	if err != nil {
		return backupResult{}, err
	}
	defer os.Remove(tmp.Name())
	n, err := cl.Backup(ctx, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return backupResult{}, fmt.Errorf("backing up: %w", err)
	}
	tokens, err := countTokens(ctx, tmp.Name())
	if err != nil {
		return backupResult{}, fmt.Errorf("the copy does not open as a bolt store: %v", err)
	}
	if err := os.Rename(tmp.Name(), output); err != nil {
		return backupResult{}, err
	}
	return backupResult{File: output, Bytes: n, Tokens: tokens}, nil
}

// countTokens opens the bolt file at path and decodes every token in it.
func countTokens(ctx context.Context, path string) (int, error) {
	s, err := bolt.Open(path, time.Second)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	toks, err := s.List(ctx, store.Filter{})
	return len(toks), err
}
