package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "tokengate",
		Usage: "<subcommand> [flags]",
		Short: "Manages tokengate API tokens",
		Long: `Manages tokengate API tokens on a running Caddy.

The subcommands talk to Caddy's local admin endpoint (found like
'caddy reload' finds it: --address, or the admin address in --config),
acting as the principal "local-operator".

Secrets are printed exactly once, alone on one line of stdout; every
other message goes to stderr. Use --json for machine-readable output.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(issueCommand(), listCommand(), showCommand(), revokeCommand(), rotateCommand())
		},
	})
}

// endpointFlags locate the admin endpoint and pick the output format.
type endpointFlags struct {
	address, config, adapter string
	json                     bool
}

func (f *endpointFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.address, "address", "", "address of Caddy's admin endpoint")
	cmd.Flags().StringVarP(&f.config, "config", "c", "", "config file to read the admin address from")
	cmd.Flags().StringVarP(&f.adapter, "adapter", "a", "", "adapter for --config")
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
}

// call sends one request to the admin endpoint and decodes the answer.
func (f *endpointFlags) call(method, path string, body, out any) error {
	addr, err := caddycmd.DetermineAdminAPIAddress(f.address, nil, f.config, f.adapter)
	if err != nil {
		return fmt.Errorf("finding the admin endpoint: %v", err)
	}
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(b)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, path, nil, reader)
	if err != nil {
		return explainAdminError(err)
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

// explainAdminError turns "caddy responded with error: HTTP 400: {json}"
// into the API's own reason and message.
func explainAdminError(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "{"); i >= 0 {
		var e APIError
		if json.Unmarshal([]byte(msg[i:]), &e) == nil && e.Reason != "" {
			if e.Message != "" {
				return fmt.Errorf("%s: %s", e.Reason, e.Message)
			}
			return fmt.Errorf("%s", e.Reason)
		}
	}
	return err
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printSecret puts the secret alone on stdout, and what it is on stderr,
// so `TOKEN=$(caddy tokengate issue ...)` captures exactly the secret.
func printSecret(f *endpointFlags, issued IssuedToken, what string) error {
	if f.json {
		return printJSON(issued)
	}
	fmt.Fprintln(os.Stdout, issued.Secret)
	t := issued.Token
	fmt.Fprintf(os.Stderr, "%s %s for %s (%s), scopes %s, services %s, expires %s. The secret above is shown only once.\n",
		what, t.ID, t.Owner, t.Purpose, strings.Join(t.Scopes, ","), strings.Join(t.Services, ","), t.ExpiresAt.Format(time.RFC3339))
	return nil
}

func issueCommand() *cobra.Command {
	var f endpointFlags
	var spec specFlags
	cmd := &cobra.Command{
		Use:   "issue --owner NAME --purpose TEXT --scope S --service S --ttl D",
		Short: "Issues a token and prints its secret once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := spec.build()
			if err != nil {
				return err
			}
			var issued IssuedToken
			if err := f.call(http.MethodPost, "/tokengate/tokens", body, &issued); err != nil {
				return err
			}
			return printSecret(&f, issued, "issued")
		},
	}
	f.register(cmd)
	spec.register(cmd)
	return cmd
}

// specFlags are the flags describing a token, shared by issue and request.
type specFlags struct {
	owner, purpose, ttl, notBefore string
	scopes, services, cidrs        []string
	maxUses                        int64
}

func (s *specFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.owner, "owner", "", "who holds the token (required)")
	cmd.Flags().StringVar(&s.purpose, "purpose", "", "what the token is for (required)")
	cmd.Flags().StringArrayVar(&s.scopes, "scope", nil, "scope such as billing:read (repeatable)")
	cmd.Flags().StringArrayVar(&s.services, "service", nil, "service the token is bound to (repeatable)")
	cmd.Flags().StringArrayVar(&s.cidrs, "cidr", nil, "client address range such as 10.0.0.0/8 (repeatable)")
	cmd.Flags().StringVar(&s.ttl, "ttl", "1h", "lifetime, such as 30m or 24h")
	cmd.Flags().StringVar(&s.notBefore, "not-before", "", "start of validity, RFC 3339 (default now)")
	cmd.Flags().Int64Var(&s.maxUses, "max-uses", 0, "number of calls allowed, 0 for unlimited")
}

func (s *specFlags) build() (map[string]any, error) {
	body := map[string]any{
		"owner": s.owner, "purpose": s.purpose, "scopes": s.scopes, "services": s.services,
		"cidrs": s.cidrs, "ttl": s.ttl, "max_uses": s.maxUses,
	}
	if s.notBefore != "" {
		nb, err := time.Parse(time.RFC3339, s.notBefore)
		if err != nil {
			return nil, fmt.Errorf("--not-before %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", s.notBefore)
		}
		body["not_before"] = nb
	}
	return body, nil
}

func listCommand() *cobra.Command {
	var f endpointFlags
	var owner, service, state string
	cmd := &cobra.Command{
		Use:   "list [--owner NAME] [--service NAME] [--state STATE]",
		Short: "Lists tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"owner": owner, "service": service, "state": state} {
				if v != "" {
					q.Set(k, v)
				}
			}
			var toks []TokenView
			if err := f.call(http.MethodGet, "/tokengate/tokens?"+q.Encode(), nil, &toks); err != nil {
				return err
			}
			if f.json {
				return printJSON(toks)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tOWNER\tSCOPES\tSERVICES\tEXPIRES\tUSES\tPURPOSE")
			for _, t := range toks {
				uses := fmt.Sprint(t.Uses)
				if t.MaxUses > 0 {
					uses += fmt.Sprintf("/%d", t.MaxUses)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.State, t.Owner, strings.Join(t.Scopes, ","),
					strings.Join(t.Services, ","), t.ExpiresAt.Format(time.RFC3339), uses, t.Purpose)
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&owner, "owner", "", "only tokens of this owner")
	cmd.Flags().StringVar(&service, "service", "", "only tokens bound to this service")
	cmd.Flags().StringVar(&state, "state", "", "only tokens in this state: active, pending, rotating, rotated, revoked, expired, exhausted")
	return cmd
}

func showCommand() *cobra.Command {
	var f endpointFlags
	cmd := &cobra.Command{
		Use:   "show TOKEN_ID",
		Short: "Shows one token (never its secret)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var t TokenView
			if err := f.call(http.MethodGet, "/tokengate/tokens/"+url.PathEscape(args[0]), nil, &t); err != nil {
				return err
			}
			return printJSON(t)
		},
	}
	f.register(cmd)
	return cmd
}

func revokeCommand() *cobra.Command {
	var f endpointFlags
	var reason string
	cmd := &cobra.Command{
		Use:   "revoke TOKEN_ID --reason TEXT",
		Short: "Revokes a token at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var t TokenView
			if err := f.call(http.MethodPost, "/tokengate/tokens/"+url.PathEscape(args[0])+"/revoke", map[string]string{"reason": reason}, &t); err != nil {
				return err
			}
			if f.json {
				return printJSON(t)
			}
			fmt.Fprintf(os.Stderr, "revoked %s (%s): %s\n", t.ID, t.Owner, t.RevokeReason)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why the token is revoked (required)")
	return cmd
}

func rotateCommand() *cobra.Command {
	var f endpointFlags
	var grace string
	cmd := &cobra.Command{
		Use:   "rotate TOKEN_ID [--grace D]",
		Short: "Issues a successor secret; the old one works until the grace ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var issued IssuedToken
			if err := f.call(http.MethodPost, "/tokengate/tokens/"+url.PathEscape(args[0])+"/rotate", map[string]string{"grace": grace}, &issued); err != nil {
				return err
			}
			return printSecret(&f, issued, "rotated "+args[0]+" to")
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&grace, "grace", "10m", "how long the old secret keeps working")
	return cmd
}
