package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokengate/caddy-tokengate/api"
)

func breakGlassCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "break-glass start|confirm",
		Short: "Replaces lost bootstrap secrets: two audited steps on the local node",
		Long: `Creates a new pair of management tokens (one to request, one to approve,
for two different people) when the bootstrap secrets are lost and nobody
can approve any more. It is never one command:

  1. start (on the node, through Caddy's admin endpoint) writes a
     break_glass.started audit line and a confirmation code to a file in
     Caddy's data folder that only Caddy's user can read; the code is not
     shown to whoever ran start.
  2. confirm, at least 10 minutes later and within the hour after, takes
     that code (--code-file) and issues the two tokens, their secrets
     shown once, with token.bootstrap and break_glass.confirmed lines
     naming the recovery and its reason.

So it takes both reaching the admin endpoint and reading the Caddy
user's files, and the audit log says so before anything is issued.
Three wrong codes cancel the recovery. The lost tokens stay valid until
revoked: revoke them (caddy tokengate revoke works locally) once the new
ones work.`,
		Example: `  caddy tokengate break-glass start --requester alice --approver bob --reason "both bootstrap secrets lost, INC-4711"
  sudo -u caddy caddy tokengate break-glass confirm bg_... --code-file /var/lib/caddy/.local/share/caddy/tokengate/break-glass/bg_...`,
	}
	cmd.AddCommand(breakGlassStartCommand(), breakGlassConfirmCommand())
	return cmd
}

func breakGlassStartCommand() *cobra.Command {
	var body api.BreakGlassStart
	cmd := command(&cobra.Command{
		Use:     "start --requester NAME --approver NAME --reason TEXT",
		Short:   "Starts a recovery: an audit line, and a code in a file only Caddy's user reads",
		Example: `  caddy tokengate break-glass start --requester alice --approver bob --reason "both bootstrap secrets lost, INC-4711"`,
		Args:    cobra.NoArgs,
	}, localOnly, func(ctx context.Context, cl *api.Client, _ []string) (api.BreakGlassPending, error) {
		return cl.StartBreakGlass(ctx, body)
	}, func(p api.BreakGlassPending, _ []string) error {
		fmt.Fprintf(os.Stderr, "recovery %s started for %s (request) and %s (approve); its code is in %s, readable by Caddy's user only.\n",
			show(p.ID), show(p.Requester), show(p.Approver), show(p.CodeFile))
		fmt.Fprintf(os.Stderr, "From %s until %s, run:\n  caddy tokengate break-glass confirm %s --code-file %s\n",
			p.NotBefore.Format(time.RFC3339), p.Expires.Format(time.RFC3339), show(p.ID), show(p.CodeFile))
		return nil
	})
	cmd.Flags().StringVar(&body.Requester, "requester", "", "person who will ask for tokens")
	cmd.Flags().StringVar(&body.Approver, "approver", "", "person who will approve them")
	cmd.Flags().StringVar(&body.Reason, "reason", "", "why the bootstrap secrets are replaced (required; audited)")
	return cmd
}

func breakGlassConfirmCommand() *cobra.Command {
	var codeFile string
	cmd := command(&cobra.Command{
		Use:     "confirm ID --code-file FILE",
		Short:   "Completes a recovery with the code from its file; prints the two new secrets once",
		Example: `  sudo -u caddy caddy tokengate break-glass confirm bg_... --code-file /var/lib/caddy/.local/share/caddy/tokengate/break-glass/bg_...`,
		Args:    cobra.ExactArgs(1),
	}, localOnly, func(ctx context.Context, cl *api.Client, args []string) (api.BootstrapResult, error) {
		if codeFile == "" {
			return api.BootstrapResult{}, errors.New("name the file start wrote the code to with --code-file FILE")
		}
		code, err := os.ReadFile(codeFile)
		if err != nil {
			return api.BootstrapResult{}, fmt.Errorf("reading the code: %v", err)
		}
		return cl.ConfirmBreakGlass(ctx, args[0], strings.TrimSpace(string(code)))
	}, func(res api.BootstrapResult, _ []string) error {
		for _, t := range res.Tokens {
			fmt.Fprintln(os.Stdout, t.Secret)
			describe("management token", t.Token)
		}
		fmt.Fprintln(os.Stderr, "Hand each secret to its owner only; they are shown only once. Revoke the lost tokens once these work.")
		return nil
	})
	cmd.Flags().StringVar(&codeFile, "code-file", "", "the file start named, holding the confirmation code (required)")
	return cmd
}
