package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokengate/caddy-tokengate/api"
)

// specFlags describe a token, for issue and request.
type specFlags struct {
	owner, purpose, ttl, notBefore, ticket string
	rate                                   string
	scopes, services, cidrs                []string
	maxUses                                int64
}

func (s *specFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.owner, "owner", "", "whom or what the token is for, a name (required); whoever receives the secret holds it")
	cmd.Flags().StringVar(&s.purpose, "purpose", "", "what the token is for (required)")
	cmd.Flags().StringArrayVar(&s.scopes, "scope", nil, "scope such as billing:read (repeatable)")
	cmd.Flags().StringArrayVar(&s.services, "service", nil, "service the token is bound to (repeatable)")
	cmd.Flags().StringArrayVar(&s.cidrs, "cidr", nil, "client address range such as 10.0.0.0/8 (repeatable)")
	cmd.Flags().StringVar(&s.ttl, "ttl", "1h", "lifetime, such as 30m or 24h")
	cmd.Flags().StringVar(&s.notBefore, "not-before", "", "start of validity, RFC 3339 (default now)")
	cmd.Flags().Int64Var(&s.maxUses, "max-uses", 0, "number of calls allowed, 0 for unlimited")
	cmd.Flags().StringVar(&s.rate, "rate", "", "rate limit as requests/window, the window 1s, 1m, 1h or 24h, such as 100/1m (default none of its own)")
	cmd.Flags().StringVar(&s.ticket, "ticket", "", "change ticket or justification the approver reads")
}

func (s *specFlags) spec() (api.TokenSpec, error) {
	spec := api.TokenSpec{Owner: s.owner, Purpose: s.purpose, Scopes: s.scopes, Services: s.services,
		CIDRs: s.cidrs, TTL: s.ttl, MaxUses: s.maxUses, RateLimit: s.rate, Ticket: s.ticket}
	if s.notBefore != "" {
		nb, err := time.Parse(time.RFC3339, s.notBefore)
		if err != nil {
			return spec, fmt.Errorf("--not-before %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", s.notBefore)
		}
		spec.NotBefore = &nb
	}
	return spec, nil
}

func bootstrapCommand() *cobra.Command {
	var req api.BootstrapRequest
	cmd := command(&cobra.Command{
		Use:   "bootstrap --requester NAME --approver NAME",
		Short: "Creates the first two management tokens, for two different people (local only, once)",
		Example: `  caddy tokengate bootstrap --requester alice --approver bob
  caddy tokengate bootstrap --requester alice --approver bob --address unix//run/caddy/admin.sock --json`,
		Args: cobra.NoArgs,
	}, localOnly, func(ctx context.Context, cl *api.Client, _ []string) (api.BootstrapResult, error) {
		return cl.Bootstrap(ctx, req)
	}, func(res api.BootstrapResult, _ []string) error {
		for _, t := range res.Tokens {
			fmt.Fprintln(os.Stdout, t.Secret)
			describe("management token", t.Token)
		}
		fmt.Fprintln(os.Stderr, "Hand each secret to its owner only; they are shown only once.")
		return nil
	})
	cmd.Flags().StringVar(&req.Requester, "requester", "", "person who will ask for tokens")
	cmd.Flags().StringVar(&req.Approver, "approver", "", "person who will approve them")
	cmd.Flags().StringVar(&req.TTL, "ttl", "", "lifetime of the two tokens (default max_ttl)")
	return cmd
}

func issueCommand() *cobra.Command {
	var spec specFlags
	cmd := command(&cobra.Command{
		Use:   "issue --owner NAME --purpose TEXT --scope S --service S [--ttl D]",
		Short: "Issues a token on the local node and prints its secret once",
		Long: `Issues a token on the local node, as the principal "local-operator",
and prints its secret once. The shipped policies/admin.rego bounds the
local operator to read-only tokens (every scope ending in ":read") living
at most 1h (refusal local_operator_bounds); longer or writing tokens go
through the management API: request, then another person approves.`,
		Example: `  TOKEN=$(caddy tokengate issue --owner alice --purpose "try the demo" --scope demo:read --service demo --ttl 30m)
  caddy tokengate issue --owner ci --purpose "smoke test" --scope api:read --service api --max-uses 10 --cidr 10.0.0.0/8 --json`,
		Args: cobra.NoArgs,
	}, localOnly, func(ctx context.Context, cl *api.Client, _ []string) (api.IssuedToken, error) {
		s, err := spec.spec()
		if err != nil {
			return api.IssuedToken{}, err
		}
		return cl.Issue(ctx, s)
	}, func(issued api.IssuedToken, _ []string) error {
		return printSecret(issued, "issued")
	})
	spec.register(cmd)
	return cmd
}

func listCommand() *cobra.Command {
	var c conn
	var filter api.TokenFilter
	var requests bool
	cmd := &cobra.Command{
		Use:   "list [--owner NAME] [--service NAME] [--state STATE] [--requests]",
		Short: "Lists tokens (never their secrets), or with --requests, token requests",
		Long: `Lists tokens (never their secrets), or with --requests, token requests
(management API only).

USES counts calls only for use-limited tokens (--max-uses), as used/max;
a token without a limit shows "-" there, since counting every call of an
unlimited token would cost a store write per call. When a token was last
used is in 'caddy tokengate show' (last_used_at) and in the hygiene report.`,
		Example: `  caddy tokengate list
  caddy tokengate list --owner alice --state active
  TOKENGATE_API=https://gw.example.com:8443 caddy tokengate list --requests --state pending`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if requests {
				c.needsAPI = true
				return call(&c, func(ctx context.Context, cl *api.Client, _ []string) ([]api.RequestView, error) {
					return cl.ListRequests(ctx, filter.State)
				}, func(reqs []api.RequestView, _ []string) error {
					return printRequests(os.Stdout, reqs)
				})(cmd, args)
			}
			return call(&c, func(ctx context.Context, cl *api.Client, _ []string) ([]api.TokenView, error) {
				return cl.ListTokens(ctx, filter)
			}, func(toks []api.TokenView, _ []string) error {
				return printTokens(os.Stdout, toks)
			})(cmd, args)
		},
	}
	c.register(cmd, localOrRemote)
	cmd.Flags().StringVar(&filter.Owner, "owner", "", "only tokens of this owner")
	cmd.Flags().StringVar(&filter.Service, "service", "", "only tokens bound to this service")
	cmd.Flags().StringVar(&filter.State, "state", "", "only this state: active, pending, rotating, rotated, revoked, exposed, expired, exhausted (requests: pending, approved, lapsed, denied, claimed)")
	cmd.Flags().BoolVar(&requests, "requests", false, "list token requests instead of tokens (management API)")
	return cmd
}

// printTokens writes the inventory as a table, every cell escaped.
func printTokens(w io.Writer, toks []api.TokenView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tOWNER\tHELD BY\tSCOPES\tSERVICES\tEXPIRES\tUSES\tRATE\tPURPOSE")
	for _, t := range toks {
		uses := "-"
		if t.MaxUses > 0 {
			uses = fmt.Sprintf("%d/%d", t.Uses, t.MaxUses)
		}
		rate := "-"
		if t.RateLimit != "" {
			rate = show(t.RateLimit)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", show(t.ID), show(t.State), show(t.Owner), show(t.HeldBy), showList(t.Scopes),
			showList(t.Services), t.ExpiresAt.Format(time.RFC3339), uses, rate, show(t.Purpose))
	}
	return tw.Flush()
}

func showCommand() *cobra.Command {
	return command(&cobra.Command{
		Use:     "show TOKEN_ID",
		Short:   "Shows one token as JSON (never its secret)",
		Example: `  caddy tokengate show tok_...`,
		Args:    cobra.ExactArgs(1),
	}, localOrRemote, func(ctx context.Context, cl *api.Client, args []string) (api.TokenView, error) {
		return cl.GetToken(ctx, args[0])
	}, func(t api.TokenView, _ []string) error {
		return printJSON(t)
	})
}

func revokeCommand() *cobra.Command {
	var reason string
	cmd := command(&cobra.Command{
		Use:     "revoke TOKEN_ID --reason TEXT",
		Short:   "Revokes a token at once",
		Example: `  caddy tokengate revoke tok_... --reason "laptop lost"`,
		Args:    cobra.ExactArgs(1),
	}, localOrRemote, func(ctx context.Context, cl *api.Client, args []string) (api.TokenView, error) {
		return cl.Revoke(ctx, args[0], reason)
	}, func(t api.TokenView, _ []string) error {
		fmt.Fprintf(os.Stderr, "revoked %s (%s): %s\n", show(t.ID), show(t.Owner), show(t.RevokeReason))
		return nil
	})
	cmd.Flags().StringVar(&reason, "reason", "", "why the token is revoked (required)")
	return cmd
}

func rotateCommand() *cobra.Command {
	var grace string
	cmd := command(&cobra.Command{
		Use:     "rotate TOKEN_ID [--grace D]",
		Short:   "Issues a successor secret; the old one works until the grace ends",
		Example: `  NEW=$(caddy tokengate rotate tok_... --grace 1h)`,
		Args:    cobra.ExactArgs(1),
	}, localOrRemote, func(ctx context.Context, cl *api.Client, args []string) (api.IssuedToken, error) {
		return cl.Rotate(ctx, args[0], grace)
	}, func(issued api.IssuedToken, args []string) error {
		return printSecret(issued, "rotated "+show(args[0])+" to")
	})
	cmd.Flags().StringVar(&grace, "grace", "10m", "how long the old secret keeps working")
	return cmd
}
