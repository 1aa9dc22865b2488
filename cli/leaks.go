package cli

import (
	"fmt"
	"os"
	"slices"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/leaks/scan"
)

// exitFound is the exit status of a scan that found secrets, so that a CI
// step fails on them; a scan that could not run exits 1.
const exitFound = 3

var found = caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return exitFound, nil })

func leaksCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "leaks scan PATH...",
		Short: "Finds tokengate secrets in files and git history",
		Example: `  caddy tokengate leaks scan .
  caddy tokengate leaks scan ~/src/app --api https://gw.example.com:8443 --revoke`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(leaksScanCommand())
	return cmd
}

// scanned is one finding as printed: where, and with --api what it is.
// Never the secret.
type scanned struct {
	Where   string `json:"where"`
	Path    string `json:"path"`
	Line    int    `json:"line"`
	Commit  string `json:"commit,omitempty"`
	TokenID string `json:"token_id,omitempty"`
	State   string `json:"state,omitempty"`
	Outcome string `json:"outcome,omitempty"`
}

func leaksScanCommand() *cobra.Command {
	var apiURL string
	var revoke, asJSON, noHistory bool
	cmd := &cobra.Command{
		Use:   "scan PATH... [--api URL [--revoke]]",
		Short: "Finds secrets that pass the checksum in files and git history; exits 3 when it finds any",
		Long: `Finds tokengate secrets in the files under each PATH and, when a PATH
is a git repository, in every commit of every ref (read with 'git log -p
--all', so the git command must be installed): a secret deleted since it
was committed is found where it was added. A string counts when it passes
the secret format's checksum; nothing else is looked up.

It prints file:line (and the commit, for history) of each, never the
secret, and exits 3 when it found any, 0 when nothing passed the
checksum, 1 when it could not scan.

Offline unless --api is given. With --api, the management API says which
token each secret opens and its state (the credential, from
$TOKENGATE_TOKEN or login, needs read); with --revoke too, the secrets are
reported as leaked and every live one is revoked (the credential needs
report_leak, which the shipped policy grants with tokens:revoke).`,
		Example: `  caddy tokengate leaks scan .
  caddy tokengate leaks scan ~/src/app --json
  TOKENGATE_TOKEN=... caddy tokengate leaks scan . --api https://gw.example.com:8443 --revoke`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, paths []string) error {
			if revoke && apiURL == "" {
				return fmt.Errorf("--revoke reports to the management API: give --api")
			}
			var findings []scan.Finding
			collect := func(f scan.Finding) { findings = append(findings, f) }
			for _, p := range paths {
				if err := scan.Files(p, collect); err != nil {
					return fmt.Errorf("scanning %s: %v", p, err)
				}
				if !noHistory && scan.IsRepository(p) {
					if err := scan.History(p, collect); err != nil {
						return fmt.Errorf("scanning the history of %s: %v", p, err)
					}
				}
			}
			out := make([]scanned, len(findings))
			for i, f := range findings {
				out[i] = scanned{Where: f.Where(), Path: f.Path, Line: f.Line, Commit: f.Commit}
			}
			if apiURL != "" && len(findings) > 0 {
				if err := resolveFindings(cmd, apiURL, revoke, findings, out); err != nil {
					return err
				}
			}
			if asJSON {
				if err := printJSON(out); err != nil {
					return err
				}
			} else {
				for _, s := range out {
					line := show(s.Where)
					if s.TokenID != "" {
						line += " " + show(s.TokenID) + " " + show(s.State)
					} else if s.Outcome != "" {
						line += " " + show(s.Outcome)
					}
					fmt.Fprintln(os.Stdout, line)
				}
			}
			if len(findings) == 0 {
				fmt.Fprintln(os.Stderr, "no tokengate secret found")
				return nil
			}
			fmt.Fprintf(os.Stderr, "%d tokengate secrets found\n", len(findings))
			cmd.SilenceErrors = true
			return found(cmd, nil)
		},
	}
	cmd.Flags().StringVar(&apiURL, "api", "", "management API base URL: resolve each secret to its token (offline without it)")
	cmd.Flags().BoolVar(&revoke, "revoke", false, "report the secrets to --api as leaked: every live one is revoked")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&noHistory, "no-history", false, "scan files on disk only, not git history")
	return cmd
}

// resolveFindings asks the management API about each distinct secret (in
// reports of at most 1000) and fills in out.
func resolveFindings(cmd *cobra.Command, apiURL string, revoke bool, findings []scan.Finding, out []scanned) error {
	base, err := parseAPI(apiURL)
	if err != nil {
		return err
	}
	secret, err := credential(cmd.Context(), apiURL)
	if err != nil {
		return err
	}
	cl := api.NewRemote(apiURL, secret)
	cl.HTTP = remoteHTTP(base)
	var distinct []string
	seen := map[string]bool{}
	for _, f := range findings {
		if !seen[f.Secret] {
			seen[f.Secret] = true
			distinct = append(distinct, f.Secret)
		}
	}
	outcome := map[string]api.LeakOutcome{}
	for batch := range slices.Chunk(distinct, 1000) {
		res, err := cl.ReportLeaks(cmd.Context(), api.LeakReport{Source: "tokengate-scan", Secrets: batch, DryRun: !revoke})
		if err != nil {
			return explain(err)
		}
		if len(res.Results) != len(batch) {
			return fmt.Errorf("the API answered %d outcomes for %d secrets", len(res.Results), len(batch))
		}
		for i, s := range batch {
			outcome[s] = res.Results[i]
		}
	}
	for i, f := range findings {
		o := outcome[f.Secret]
		out[i].TokenID, out[i].State, out[i].Outcome = o.TokenID, o.State, o.Outcome
	}
	return nil
}
