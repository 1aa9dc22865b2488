package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/tokengate/caddy-tokengate/internal/auditlog"
)

// signingKeyEnv is the variable docs/caddyfile.md's Caddyfile reads signing_key
// from; `audit key` reads it too, so that it prints the key the writer
// signs with.
const signingKeyEnv = "TOKENGATE_AUDIT_KEY"

func auditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit verify|prove|check-proof|key",
		Short: "Verifies audit files against their signed checkpoints",
		Example: `  caddy tokengate audit key > audit.pub
  caddy tokengate audit verify --key audit.pub audit-2026-12-01T00-00-00.000.log audit.log
  caddy tokengate audit verify --key audit.pub --checkpoint witness.checkpoints audit.log
  caddy tokengate audit prove audit.log 1500 > line1500.proof
  caddy tokengate audit check-proof --key audit.pub line1500.proof`,
	}
	cmd.AddCommand(auditVerifyCommand(), auditProveCommand(), auditCheckProofCommand(), auditKeyCommand())
	return cmd
}

func auditVerifyCommand() *cobra.Command {
	var key string
	var checkpoints []string
	cmd := &cobra.Command{
		Use:   "verify [--key KEY] [--checkpoint FILE]... FILE...",
		Short: "Checks that every line of the audit files is covered by a signed checkpoint",
		Long: `Checks audit files written by the tokengate_audit writer, given in the
order they were written (rolled files first, oldest first), against the
signed checkpoints in <FILE>.checkpoints and in every --checkpoint file (a
witness's copy of the tokengate.checkpoint lines).

Exits 0 when every line is covered by a checkpoint that --key verifies and
the files reach every checkpoint. Exits 1 naming the first line (1-based,
per file) that was changed, removed, inserted or reordered, or saying that
the files are shorter than a checkpoint.

--key is the verifier key (tokengate-audit+<hash>+<base64>, as 'caddy
tokengate audit key' prints it) or a file holding it; default: the key in
Caddy's data dir, for files written on this machine.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			v, err := verifierFor(key)
			if err != nil {
				return err
			}
			sources, err := checkpointSources(files, checkpoints)
			if err != nil {
				return err
			}
			res, err := auditlog.Verify(files, sources, v)
			if err != nil {
				return fmt.Errorf("audit verify: %v", err)
			}
			from := ""
			if res.StartSize > 0 {
				from = fmt.Sprintf(", continuing a log of %d lines in earlier files", res.StartSize)
			}
			fmt.Fprintf(os.Stderr, "ok: %d lines in %d files, every one covered by a checkpoint signed by %s (%d checkpoints matched%s)\n",
				res.Lines, len(files), v.Name(), res.Checkpoints, from)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "verifier key, or a file holding it (default: the key in Caddy's data dir)")
	cmd.Flags().StringArrayVar(&checkpoints, "checkpoint", nil, "more checkpoints, e.g. a witness's copy (repeatable)")
	return cmd
}

func auditProveCommand() *cobra.Command {
	var key string
	var checkpoints []string
	cmd := &cobra.Command{
		Use:   "prove [--key KEY] [--checkpoint FILE]... FILE LINE",
		Short: "Prints the proof that one line of an audit file is in a signed checkpoint",
		Long: `Prints, as JSON, the inclusion proof of line LINE (1-based) of the audit
FILE against the newest signed checkpoint that covers it (from
<FILE>.checkpoints and every --checkpoint file). The proof holds the line,
its place in the tree, the signed checkpoint and the hashes linking them:
whoever holds the verifier key checks it offline, without the other lines,
with 'caddy tokengate audit check-proof'.

Exits 1 when FILE no longer matches the checkpoint, or no checkpoint covers
the line yet. --key is as for 'audit verify'.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			line, err := strconv.Atoi(args[1])
			if err != nil {
				return fmt.Errorf("LINE %q is not a line number", args[1])
			}
			v, err := verifierFor(key)
			if err != nil {
				return err
			}
			sources, err := checkpointSources(args[:1], checkpoints)
			if err != nil {
				return err
			}
			p, err := auditlog.Prove(args[0], line, sources, v)
			if err != nil {
				return fmt.Errorf("audit prove: %v", err)
			}
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(p)
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "verifier key, or a file holding it (default: the key in Caddy's data dir)")
	cmd.Flags().StringArrayVar(&checkpoints, "checkpoint", nil, "more checkpoints, e.g. a witness's copy (repeatable)")
	return cmd
}

func auditCheckProofCommand() *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "check-proof [--key KEY] PROOF",
		Short: "Checks a proof printed by 'audit prove', offline",
		Long: `Checks a proof printed by 'caddy tokengate audit prove' (a file, or - for
standard input): that its checkpoint is signed by --key and that its line
is the line that checkpoint covers at that place. Needs neither the audit
file nor the network.

Exits 0 and prints the line when it checks; exits 1 when the line, its
place, a hash or the checkpoint was changed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := verifierFor(key)
			if err != nil {
				return err
			}
			in := os.Stdin
			if args[0] != "-" {
				if in, err = os.Open(args[0]); err != nil {
					return err
				}
				defer in.Close()
			}
			p, err := auditlog.ReadProof(in)
			if err != nil {
				return err
			}
			if err := auditlog.CheckProof(p, v); err != nil {
				return fmt.Errorf("audit check-proof: %v", err)
			}
			fmt.Fprintf(os.Stderr, "ok: %s line %d is line %d of the log, as signed by %s\n", p.File, p.Line, p.Index+1, v.Name())
			fmt.Fprintln(os.Stdout, p.Record)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "verifier key, or a file holding it (default: the key in Caddy's data dir)")
	return cmd
}

// verifierFor reads --key, or the local key when it was not given.
func verifierFor(key string) (note.Verifier, error) {
	if key == "" {
		return localVerifier()
	}
	return auditlog.ReadVerifier(key)
}

// checkpointSources are the --checkpoint files and the .checkpoints file
// beside each audit file that has one.
func checkpointSources(files, extra []string) ([]string, error) {
	sources := append([]string(nil), extra...)
	for _, f := range files {
		if _, err := os.Stat(f + ".checkpoints"); err == nil {
			sources = append(sources, f+".checkpoints")
		}
	}
	if len(sources) == 0 {
		return nil, errors.New("no checkpoints: none of the files has a .checkpoints file beside it; give --checkpoint")
	}
	return sources, nil
}

func auditKeyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "key",
		Short: "Prints the verifier key of the audit writer's signing key",
		Long: `Prints the verifier key (tokengate-audit+<hash>+<base64>) that checks the
audit checkpoints: of the signing key in $` + signingKeyEnv + ` when set, else
of the key the tokengate_audit writer generated in Caddy's data dir. The
verifier key is public: hand it to whoever verifies the audit files.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			k, err := localKey()
			if err != nil {
				return err
			}
			fmt.Fprintln(os.Stdout, k.Vkey)
			return nil
		},
	}
}

func localKey() (*auditlog.Key, error) {
	if s := os.Getenv(signingKeyEnv); strings.TrimSpace(s) != "" {
		k, err := auditlog.ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("$%s: %v", signingKeyEnv, err)
		}
		return k, nil
	}
	path := auditlog.KeyPath(caddy.AppDataDir())
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no audit signing key at %s (the tokengate_audit writer makes it when Caddy first runs it): %v", path, err)
	}
	return auditlog.LoadOrCreateKey(path)
}

// localVerifier is the verifier of localKey, for files written here.
func localVerifier() (note.Verifier, error) {
	k, err := localKey()
	if err != nil {
		return nil, fmt.Errorf("%v; or give --key", err)
	}
	return note.NewVerifier(k.Vkey)
}
