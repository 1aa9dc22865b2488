package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tokengate/caddy-tokengate/api"
)

func requestCommand() *cobra.Command {
	var spec specFlags
	cmd := command(&cobra.Command{
		Use:   "request --owner NAME --purpose TEXT --scope S --service S [--ttl D]",
		Short: "Asks for a token; prints the secret if policy approves at once",
		Example: `  TOKENGATE_API=https://gw.example.com:8443 caddy tokengate request --owner billing-exporter \
    --purpose "nightly invoice export" --scope billing:read --service billing --ttl 720h --ticket OPS-142`,
		Args: cobra.NoArgs,
	}, remoteOnly, func(ctx context.Context, cl *api.Client, _ []string) (api.RequestOutcome, error) {
		s, err := spec.spec()
		if err != nil {
			return api.RequestOutcome{}, err
		}
		return cl.Request(ctx, s)
	}, func(out api.RequestOutcome, _ []string) error {
		if out.Secret != "" && out.Token != nil {
			return printSecret(api.IssuedToken{Secret: out.Secret, Token: *out.Token}, "approved at once by policy: issued")
		}
		fmt.Fprintf(os.Stderr, "request %s is %s; another person must approve it, then run: caddy tokengate claim %s\n", show(out.Request.ID), show(out.Request.Status), show(out.Request.ID))
		return nil
	})
	spec.register(cmd)
	return cmd
}

// decideCommand is approve or deny; does is the verb as the help says it.
func decideCommand(verb, does string) *cobra.Command {
	var reason string
	cmd := command(&cobra.Command{
		Use:     verb + " REQUEST_ID [--reason TEXT]",
		Short:   does + " someone else's token request",
		Example: "  TOKENGATE_API=https://gw.example.com:8443 caddy tokengate " + verb + " req_... --reason \"ticket OPS-142 checked\"",
		Args:    cobra.ExactArgs(1),
	}, remoteOnly, func(ctx context.Context, cl *api.Client, args []string) (api.RequestOutcome, error) {
		if verb == "approve" {
			return cl.Approve(ctx, args[0], reason)
		}
		return cl.Deny(ctx, args[0], reason)
	}, func(out api.RequestOutcome, _ []string) error {
		fmt.Fprintf(os.Stderr, "request %s is %s\n", show(out.Request.ID), show(out.Request.Status))
		return nil
	})
	cmd.Flags().StringVar(&reason, "reason", "", "why")
	return cmd
}

func claimCommand() *cobra.Command {
	return command(&cobra.Command{
		Use:     "claim REQUEST_ID",
		Short:   "Takes the secret of your approved request, once",
		Example: `  TOKEN=$(TOKENGATE_API=https://gw.example.com:8443 caddy tokengate claim req_...)`,
		Args:    cobra.ExactArgs(1),
	}, remoteOnly, func(ctx context.Context, cl *api.Client, args []string) (api.RequestOutcome, error) {
		return cl.Claim(ctx, args[0])
	}, func(out api.RequestOutcome, _ []string) error {
		if out.Token == nil {
			return fmt.Errorf("the answer to claim %s holds no token", show(out.Request.ID))
		}
		return printSecret(api.IssuedToken{Secret: out.Secret, Token: *out.Token}, "claimed")
	})
}

// printRequests writes token requests as a table, every cell escaped: this
// is the screen an approver decides on. It names who will hold the secret
// (the requester, who alone may claim it) apart from the owner, which is
// only the name the requester typed.
func printRequests(w io.Writer, reqs []api.RequestView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tWILL BE HELD BY\tOWNER\tSCOPES\tTTL\tTICKET\tPURPOSE")
	for _, r := range reqs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", show(r.ID), show(r.Status), show(cmp.Or(r.HeldBy, r.RequestedBy)), show(r.Owner),
			showList(r.Scopes), show(r.TTL), show(r.Ticket), show(r.Purpose))
	}
	return tw.Flush()
}
