package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/spf13/cobra"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/policy"
)

// exitDenied is the exit status of a check that answers deny, so that a
// script can gate a rollout on it; a check that fails exits 1.
const exitDenied = 3

// denied ends a command with exitDenied. caddycmd.Main exits with the
// status a Caddy CommandFunc returns, and that status reaches it only
// through WrapCommandFuncForCobra.
var denied = caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return exitDenied, nil })

func checkCommand() *cobra.Command {
	var c conn
	var req api.CheckRequest
	var policyDir string
	cmd := &cobra.Command{
		Use:   "check --token-id ID --service S [--method M] [--path P] [--ip IP] [--policy DIR|BUNDLE.tar.gz]",
		Short: "Dry-runs a gateway decision for a stored token (allow/deny with reasons)",
		Long: `Dry-runs a gateway decision for a stored token and a described call,
without using the token. With --policy, the decision comes from the .rego
files in DIR, or from a bundle file as 'opa build' writes it, instead of
the running policy: try a policy change against real token metadata
before rolling it out. Exits 3 on deny, with --json
too (the JSON is printed first).`,
		Example: `  caddy tokengate check --token-id tok_... --service billing --method POST --path /billing/invoices
  caddy tokengate check --token-id tok_... --service billing --ip 10.1.2.3 --policy ./policies-next
  TOKENGATE_API=https://gw.example.com:8443 caddy tokengate check --token-id tok_... --service billing --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client(cmd.Context())
			if err != nil {
				return err
			}
			var res api.CheckResult
			if policyDir == "" {
				res, err = cl.Check(cmd.Context(), req)
			} else {
				res, err = checkWithPolicy(cmd.Context(), cl, req, policyDir)
			}
			if err != nil {
				return asUnreachable(err)
			}
			if c.json {
				if err := printJSON(res); err != nil {
					return err
				}
			} else {
				verdict := "deny"
				if res.Allow {
					verdict = "allow"
				}
				fmt.Fprintf(os.Stdout, "%s %s (policy %s)\n", verdict, show(strings.Join(res.Reasons, " ")), show(res.PolicyRev))
			}
			if !res.Allow {
				// A deny is an answer, not an error to print again.
				cmd.SilenceErrors = true
				return denied(cmd, nil)
			}
			return nil
		},
	}
	c.register(cmd, localOrRemote)
	cmd.Flags().StringVar(&req.TokenID, "token-id", "", "token to check (required)")
	cmd.Flags().StringVar(&req.Service, "service", "", "service of the route (required)")
	cmd.Flags().StringVar(&req.Method, "method", "GET", "HTTP method")
	cmd.Flags().StringVar(&req.Path, "path", "/", "request path")
	cmd.Flags().StringVar(&req.Host, "host", "", "request host")
	cmd.Flags().StringVar(&req.IP, "ip", "", "client IP address")
	cmd.Flags().StringVar(&policyDir, "policy", "", "evaluate with the policies in this folder or bundle (.tar.gz from opa build) instead of the running ones")
	return cmd
}

// localEngine compiles the policy at location: a folder, or a bundle
// file as `opa build` writes it. A signed bundle is refused, as there is
// no key here to check its signature with.
func localEngine(ctx context.Context, location string) (*policy.Engine, error) {
	info, err := os.Stat(location)
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		return policy.NewEngine(os.DirFS(location))
	}
	b, err := policy.NewBundle(location, policy.BundleOptions{})
	if err != nil {
		return nil, err
	}
	return policy.NewBundleEngine(ctx, b)
}

// checkWithPolicy evaluates the policy folder or bundle dir on the input the
// gateway builds for the stored token and the described call. The server
// builds that input with the gateway's own code, so the local decision
// sees every field the running policy sees, however the input grows.
func checkWithPolicy(ctx context.Context, cl *api.Client, req api.CheckRequest, dir string) (api.CheckResult, error) {
	engine, err := localEngine(ctx, dir)
	if err != nil {
		return api.CheckResult{}, fmt.Errorf("loading policy %s: %v", dir, err)
	}
	req.WithInput = true
	res, err := cl.Check(ctx, req)
	if err != nil {
		return api.CheckResult{}, err
	}
	if res.Input == nil {
		// The token is dead (revoked, expired, used up): that is decided
		// before any policy runs, whichever folder it comes from.
		return api.CheckResult{Reasons: res.Reasons, PolicyRev: engine.Revision()}, nil
	}
	input, err := ast.ValueFromReader(bytes.NewReader(res.Input))
	if err != nil {
		return api.CheckResult{}, fmt.Errorf("reading the policy input from the server: %v", err)
	}
	d, err := engine.Decide(ctx, policy.GatewayQuery, input)
	if err != nil {
		return api.CheckResult{}, err
	}
	reasons := d.Reasons
	if reasons == nil {
		reasons = []string{}
	}
	return api.CheckResult{Allow: d.Allow, Reasons: reasons, Scope: d.Scope, PolicyRev: d.Revision}, nil
}

func reportCommand() *cobra.Command {
	var unusedDays int
	cmd := command(&cobra.Command{
		Use:   "report [--unused-days N]",
		Short: "Prints the token hygiene report",
		Example: `  caddy tokengate report
  caddy tokengate report --unused-days 14 --json`,
		Args: cobra.NoArgs,
	}, localOrRemote, func(ctx context.Context, cl *api.Client, _ []string) (api.Report, error) {
		return cl.Report(ctx, unusedDays)
	}, func(rep api.Report, _ []string) error {
		fmt.Fprintf(os.Stdout, "live tokens: %d\n", rep.LiveTokens)
		for _, section := range []struct {
			title string
			items []api.ReportItem
		}{
			{"expiring within 7 days", rep.ExpiringSoon},
			{"never used", rep.NeverUsed},
			{fmt.Sprintf("unused for %d days", unusedDays), rep.Unused},
			{"write scope without CIDR binding", rep.WriteWithoutCIDR},
			{"lifetime over 30 days", rep.LongLived},
			{"scopes granted but never exercised", rep.UnusedScopes},
			{"secret found in the wild (exposed) in the last 30 days", rep.Exposed},
		} {
			fmt.Fprintf(os.Stdout, "\n%s: %d\n", section.title, len(section.items))
			for _, it := range section.items {
				fmt.Fprintf(os.Stdout, "  %s  %s  %s  %s%s\n", show(it.TokenID), show(it.Owner), show(it.Purpose), show(it.Detail), showList(it.Scopes))
			}
		}
		return nil
	})
	cmd.Flags().IntVar(&unusedDays, "unused-days", 30, "days without use that count as unused")
	return cmd
}
