package caddymodule

import (
	"bytes"
	"context"
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

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/report"
	"github.com/tokengate/caddy-tokengate/internal/textcheck"
	"github.com/tokengate/caddy-tokengate/store"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "tokengate",
		Usage: "<subcommand> [flags]",
		Short: "Manages tokengate API tokens",
		Long: `Manages tokengate API tokens.

Without --api, subcommands talk to Caddy's local admin endpoint (found as
'caddy reload' finds it: --address, or the admin address in --config) as
the principal "local-operator", whose powers policies/admin.rego bounds.

With --api URL (or TOKENGATE_API), they call a tokengate_admin management
API as the owner of the management token in TOKENGATE_TOKEN. The token is
read from the environment only, never from the command line, where it
would land in shell history and process lists.

Secrets are printed exactly once, alone on one line of stdout; every other
message goes to stderr. --json prints JSON on stdout instead.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(
				bootstrapCommand(), issueCommand(), requestCommand(),
				decideCommand("approve"), decideCommand("deny"), claimCommand(),
				listCommand(), showCommand(), rotateCommand(), revokeCommand(),
				reportCommand(), checkCommand(), policyTestCommand(),
			)
		},
	})
}

// client calls either the local admin endpoint or a remote management API.
type client struct {
	address, config, adapter string
	api                      string
	json                     bool
}

func (c *client) register(cmd *cobra.Command, remote bool) {
	cmd.Flags().StringVar(&c.address, "address", "", "address of Caddy's admin endpoint")
	cmd.Flags().StringVarP(&c.config, "config", "c", "", "config file to read the admin address from")
	cmd.Flags().StringVarP(&c.adapter, "adapter", "a", "", "adapter for --config")
	if remote {
		cmd.Flags().StringVar(&c.api, "api", "", "management API base URL (default $TOKENGATE_API); the credential comes from $TOKENGATE_TOKEN")
	}
	cmd.Flags().BoolVar(&c.json, "json", false, "print JSON")
}

func (c *client) remoteAPI() string {
	if c.api != "" {
		return strings.TrimSuffix(c.api, "/")
	}
	return strings.TrimSuffix(os.Getenv("TOKENGATE_API"), "/")
}

// call sends one request and decodes the answer into out. path is
// relative to /tokengate (local) or /v1 (remote).
func (c *client) call(method, path string, body, out any) error {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(b)
	}
	var resp *http.Response
	var err error
	if api := c.remoteAPI(); api != "" {
		resp, err = remoteRequest(api+"/v1"+path, method, reader)
	} else {
		resp, err = c.localRequest("/tokengate"+path, method, reader)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *client) localRequest(path, method string, body io.Reader) (*http.Response, error) {
	addr, err := caddycmd.DetermineAdminAPIAddress(c.address, nil, c.config, c.adapter)
	if err != nil {
		return nil, fmt.Errorf("finding the admin endpoint: %v", err)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, path, nil, body)
	if err != nil {
		return nil, explainAPIError(err.Error())
	}
	return resp, nil
}

func remoteRequest(url, method string, body io.Reader) (*http.Response, error) {
	secret := os.Getenv("TOKENGATE_TOKEN")
	if secret == "" {
		return nil, fmt.Errorf("set TOKENGATE_TOKEN to your management token (it is never taken from the command line)")
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling %s: %v", url, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, explainAPIError(fmt.Sprintf("HTTP %d: %s", resp.StatusCode, msg))
	}
	return resp, nil
}

// explainAPIError turns an error response into the API's own reason and
// message.
func explainAPIError(msg string) error {
	if i := strings.Index(msg, "{"); i >= 0 {
		var e APIError
		if json.Unmarshal([]byte(msg[i:]), &e) == nil && e.Reason != "" {
			if e.Message != "" {
				return fmt.Errorf("%s: %s", show(e.Reason), show(e.Message))
			}
			return fmt.Errorf("%s", show(e.Reason))
		}
	}
	return fmt.Errorf("%s", show(strings.TrimSpace(msg)))
}

// Everything the CLI prints comes from the API, and so from whoever typed
// it: an owner, a purpose, a reason. The server refuses control and bidi
// characters in new input, but older records or another server may hold
// them, and in a terminal they can erase lines or fake rows on the screen
// of the person deciding. So every value printed goes through show or
// writeJSONTo.

// show escapes a value for a terminal (quoted, when it needs escaping).
func show(s string) string { return textcheck.Printable(s) }

func showList(l []string) string { return show(strings.Join(l, ",")) }

func printJSON(v any) error { return writeJSONTo(os.Stdout, v) }

// writeJSONTo writes v as indented JSON with every non-printable
// character \u-escaped: encoding/json escapes C0 controls itself but
// leaves C1 controls and bidi overrides raw.
func writeJSONTo(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(textcheck.EscapeJSON(b), '\n'))
	return err
}

// printSecret puts the secret alone on stdout, and what it is on stderr,
// so `TOKEN=$(caddy tokengate issue ...)` captures exactly the secret.
func printSecret(c *client, issued IssuedToken, what string) error {
	if c.json {
		return printJSON(issued)
	}
	fmt.Fprintln(os.Stdout, issued.Secret)
	describe(what, issued.Token)
	fmt.Fprintln(os.Stderr, "The secret above is shown only once.")
	return nil
}

func describe(what string, t TokenView) {
	fmt.Fprintf(os.Stderr, "%s %s for %s (%s), scopes %s, services %s, expires %s.\n",
		what, show(t.ID), show(t.Owner), show(t.Purpose), showList(t.Scopes), showList(t.Services), t.ExpiresAt.Format(time.RFC3339))
}

// specFlags describe a token, for issue and request.
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

func (s *specFlags) body() (map[string]any, error) {
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

func bootstrapCommand() *cobra.Command {
	var c client
	var req BootstrapRequest
	cmd := &cobra.Command{
		Use:   "bootstrap --requester NAME --approver NAME",
		Short: "Creates the first two management tokens, for two different people (local only, once)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var res BootstrapResult
			if err := c.call(http.MethodPost, "/bootstrap", req, &res); err != nil {
				return err
			}
			if c.json {
				return printJSON(res)
			}
			for _, t := range res.Tokens {
				fmt.Fprintln(os.Stdout, t.Secret)
				describe("management token", t.Token)
			}
			fmt.Fprintln(os.Stderr, "Hand each secret to its owner only; they are shown only once.")
			return nil
		},
	}
	c.register(cmd, false)
	cmd.Flags().StringVar(&req.Requester, "requester", "", "person who will ask for tokens")
	cmd.Flags().StringVar(&req.Approver, "approver", "", "person who will approve them")
	cmd.Flags().StringVar(&req.TTL, "ttl", "", "lifetime of the two tokens (default max_ttl)")
	return cmd
}

func issueCommand() *cobra.Command {
	var c client
	var spec specFlags
	cmd := &cobra.Command{
		Use:   "issue --owner NAME --purpose TEXT --scope S --service S [--ttl D]",
		Short: "Issues a token on the local node and prints its secret once",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			body, err := spec.body()
			if err != nil {
				return err
			}
			var issued IssuedToken
			if err := c.call(http.MethodPost, "/tokens", body, &issued); err != nil {
				return err
			}
			return printSecret(&c, issued, "issued")
		},
	}
	c.register(cmd, false)
	spec.register(cmd)
	return cmd
}

func requestCommand() *cobra.Command {
	var c client
	var spec specFlags
	cmd := &cobra.Command{
		Use:   "request --owner NAME --purpose TEXT --scope S --service S [--ttl D]",
		Short: "Asks for a token; prints the secret if policy approves at once",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			body, err := spec.body()
			if err != nil {
				return err
			}
			var out RequestOutcome
			if err := c.call(http.MethodPost, "/requests", body, &out); err != nil {
				return err
			}
			if c.json {
				return printJSON(out)
			}
			if out.Secret != "" {
				return printSecret(&c, IssuedToken{Secret: out.Secret, Token: *out.Token}, "approved at once by policy: issued")
			}
			fmt.Fprintf(os.Stderr, "request %s is %s; another person must approve it, then run: caddy tokengate claim %s\n", show(out.Request.ID), show(out.Request.Status), show(out.Request.ID))
			return nil
		},
	}
	c.register(cmd, true)
	spec.register(cmd)
	return cmd
}

func decideCommand(verb string) *cobra.Command {
	var c client
	var reason string
	cmd := &cobra.Command{
		Use:   verb + " REQUEST_ID [--reason TEXT]",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + "s someone else's token request",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var out RequestOutcome
			if err := c.call(http.MethodPost, "/requests/"+url.PathEscape(args[0])+"/"+verb, map[string]string{"reason": reason}, &out); err != nil {
				return err
			}
			if c.json {
				return printJSON(out)
			}
			fmt.Fprintf(os.Stderr, "request %s is %s\n", show(out.Request.ID), show(out.Request.Status))
			return nil
		},
	}
	c.register(cmd, true)
	cmd.Flags().StringVar(&reason, "reason", "", "why")
	return cmd
}

func claimCommand() *cobra.Command {
	var c client
	cmd := &cobra.Command{
		Use:   "claim REQUEST_ID",
		Short: "Takes the secret of your approved request, once",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var out RequestOutcome
			if err := c.call(http.MethodPost, "/requests/"+url.PathEscape(args[0])+"/claim", nil, &out); err != nil {
				return err
			}
			if c.json {
				return printJSON(out)
			}
			return printSecret(&c, IssuedToken{Secret: out.Secret, Token: *out.Token}, "claimed")
		},
	}
	c.register(cmd, true)
	return cmd
}

func listCommand() *cobra.Command {
	var c client
	var owner, service, state string
	var requests bool
	cmd := &cobra.Command{
		Use:   "list [--owner NAME] [--service NAME] [--state STATE] [--requests]",
		Short: "Lists tokens (never their secrets), or with --requests, token requests",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if requests {
				return listRequestsCLI(&c, state)
			}
			q := url.Values{}
			for k, v := range map[string]string{"owner": owner, "service": service, "state": state} {
				if v != "" {
					q.Set(k, v)
				}
			}
			var toks []TokenView
			if err := c.call(http.MethodGet, "/tokens?"+q.Encode(), nil, &toks); err != nil {
				return err
			}
			if c.json {
				return printJSON(toks)
			}
			return printTokens(os.Stdout, toks)
		},
	}
	c.register(cmd, true)
	cmd.Flags().StringVar(&owner, "owner", "", "only tokens of this owner")
	cmd.Flags().StringVar(&service, "service", "", "only tokens bound to this service")
	cmd.Flags().StringVar(&state, "state", "", "only this state: active, pending, rotating, rotated, revoked, expired, exhausted (requests: pending, approved, lapsed, denied, claimed)")
	cmd.Flags().BoolVar(&requests, "requests", false, "list token requests instead of tokens (management API)")
	return cmd
}

// printTokens writes the inventory as a table, every cell escaped.
func printTokens(w io.Writer, toks []TokenView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tOWNER\tSCOPES\tSERVICES\tEXPIRES\tUSES\tPURPOSE")
	for _, t := range toks {
		uses := fmt.Sprint(t.Uses)
		if t.MaxUses > 0 {
			uses += fmt.Sprintf("/%d", t.MaxUses)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", show(t.ID), show(t.State), show(t.Owner), showList(t.Scopes),
			showList(t.Services), t.ExpiresAt.Format(time.RFC3339), uses, show(t.Purpose))
	}
	return tw.Flush()
}

func listRequestsCLI(c *client, status string) error {
	var reqs []RequestView
	if err := c.call(http.MethodGet, "/requests?status="+url.QueryEscape(status), nil, &reqs); err != nil {
		return err
	}
	if c.json {
		return printJSON(reqs)
	}
	return printRequests(os.Stdout, reqs)
}

// printRequests writes token requests as a table, every cell escaped: this
// is the screen an approver decides on.
func printRequests(w io.Writer, reqs []RequestView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tREQUESTED BY\tOWNER\tSCOPES\tTTL\tPURPOSE")
	for _, r := range reqs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", show(r.ID), show(r.Status), show(r.RequestedBy), show(r.Owner),
			showList(r.Scopes), show(r.TTL), show(r.Purpose))
	}
	return tw.Flush()
}

func showCommand() *cobra.Command {
	var c client
	cmd := &cobra.Command{
		Use:   "show TOKEN_ID",
		Short: "Shows one token as JSON (never its secret)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var t TokenView
			if err := c.call(http.MethodGet, "/tokens/"+url.PathEscape(args[0]), nil, &t); err != nil {
				return err
			}
			return printJSON(t)
		},
	}
	c.register(cmd, true)
	return cmd
}

func revokeCommand() *cobra.Command {
	var c client
	var reason string
	cmd := &cobra.Command{
		Use:   "revoke TOKEN_ID --reason TEXT",
		Short: "Revokes a token at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var t TokenView
			if err := c.call(http.MethodPost, "/tokens/"+url.PathEscape(args[0])+"/revoke", map[string]string{"reason": reason}, &t); err != nil {
				return err
			}
			if c.json {
				return printJSON(t)
			}
			fmt.Fprintf(os.Stderr, "revoked %s (%s): %s\n", show(t.ID), show(t.Owner), show(t.RevokeReason))
			return nil
		},
	}
	c.register(cmd, true)
	cmd.Flags().StringVar(&reason, "reason", "", "why the token is revoked (required)")
	return cmd
}

func rotateCommand() *cobra.Command {
	var c client
	var grace string
	cmd := &cobra.Command{
		Use:   "rotate TOKEN_ID [--grace D]",
		Short: "Issues a successor secret; the old one works until the grace ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var issued IssuedToken
			if err := c.call(http.MethodPost, "/tokens/"+url.PathEscape(args[0])+"/rotate", map[string]string{"grace": grace}, &issued); err != nil {
				return err
			}
			return printSecret(&c, issued, "rotated "+args[0]+" to")
		},
	}
	c.register(cmd, true)
	cmd.Flags().StringVar(&grace, "grace", "10m", "how long the old secret keeps working")
	return cmd
}

func reportCommand() *cobra.Command {
	var c client
	var unusedDays int
	cmd := &cobra.Command{
		Use:   "report [--unused-days N]",
		Short: "Prints the token hygiene report",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var rep map[string]json.RawMessage
			if err := c.call(http.MethodGet, fmt.Sprintf("/report?unused_days=%d", unusedDays), nil, &rep); err != nil {
				return err
			}
			if c.json {
				return printJSON(rep)
			}
			fmt.Fprintf(os.Stdout, "live tokens: %s\n", show(string(rep["live_tokens"])))
			for _, section := range []struct{ key, title string }{
				{"expiring_soon", "expiring within 7 days"},
				{"never_used", "never used"},
				{"unused", fmt.Sprintf("unused for %d days", unusedDays)},
				{"write_without_cidr", "write scope without CIDR binding"},
				{"long_lived", "lifetime over 30 days"},
				{"unused_scopes", "scopes granted but never exercised"},
			} {
				var items []report.Item
				_ = json.Unmarshal(rep[section.key], &items)
				fmt.Fprintf(os.Stdout, "\n%s: %d\n", section.title, len(items))
				for _, it := range items {
					fmt.Fprintf(os.Stdout, "  %s  %s  %s  %s%s\n", show(it.TokenID), show(it.Owner), show(it.Purpose), show(it.Detail), showList(it.Scopes))
				}
			}
			return nil
		},
	}
	c.register(cmd, true)
	cmd.Flags().IntVar(&unusedDays, "unused-days", 30, "days without use that count as unused")
	return cmd
}

func checkCommand() *cobra.Command {
	var c client
	var body CheckRequest
	var policyDir string
	cmd := &cobra.Command{
		Use:   "check --token-id ID --service S [--method M] [--path P] [--ip IP] [--policy DIR]",
		Short: "Dry-runs a gateway decision for a stored token (allow/deny with reasons)",
		Long: `Dry-runs a gateway decision for a stored token and a described call,
without using the token. With --policy, the decision comes from the .rego
files in DIR instead of the running policy: try a policy change against
real token metadata before rolling it out.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var res CheckResult
			if policyDir == "" {
				if err := c.call(http.MethodPost, "/check", body, &res); err != nil {
					return err
				}
			} else {
				var err error
				if res, err = checkWithLocalPolicy(&c, body, policyDir); err != nil {
					return err
				}
			}
			if c.json {
				return printJSON(res)
			}
			verdict := "deny"
			if res.Allow {
				verdict = "allow"
			}
			fmt.Fprintf(os.Stdout, "%s %s (policy %s)\n", verdict, show(strings.Join(res.Reasons, " ")), show(res.PolicyRev))
			if !res.Allow {
				// A deny exits non-zero so scripts can gate a rollout on it.
				os.Exit(3)
			}
			return nil
		},
	}
	c.register(cmd, true)
	cmd.Flags().StringVar(&body.TokenID, "token-id", "", "token to check (required)")
	cmd.Flags().StringVar(&body.Service, "service", "", "service of the route (required)")
	cmd.Flags().StringVar(&body.Method, "method", "GET", "HTTP method")
	cmd.Flags().StringVar(&body.Path, "path", "/", "request path")
	cmd.Flags().StringVar(&body.Host, "host", "", "request host")
	cmd.Flags().StringVar(&body.IP, "ip", "", "client IP address")
	cmd.Flags().StringVar(&policyDir, "policy", "", "evaluate with the policies in this folder instead of the running ones")
	return cmd
}

// checkWithLocalPolicy fetches the token's metadata and evaluates a local
// policy folder against it.
func checkWithLocalPolicy(c *client, body CheckRequest, dir string) (CheckResult, error) {
	engine, err := policy.NewEngine(os.DirFS(dir))
	if err != nil {
		return CheckResult{}, fmt.Errorf("loading policy %s: %v", dir, err)
	}
	var v TokenView
	if err := c.call(http.MethodGet, "/tokens/"+url.PathEscape(body.TokenID), nil, &v); err != nil {
		return CheckResult{}, err
	}
	tok := &store.Token{
		ID: v.ID, Owner: v.Owner, Purpose: v.Purpose, Scopes: v.Scopes, Services: v.Services, CIDRs: v.CIDRs,
		NotBefore: v.NotBefore, ExpiresAt: v.ExpiresAt, MaxUses: v.MaxUses, Uses: v.Uses,
	}
	if v.RevokedAt != nil {
		tok.RevokedAt = *v.RevokedAt
	}
	if v.GraceUntil != nil {
		tok.GraceUntil = *v.GraceUntil
	}
	req := policy.Request{Method: cmpOr(body.Method, http.MethodGet), Host: body.Host, Path: cmpOr(body.Path, "/"), RemoteIP: body.IP}
	d, err := gateway.DryRun(context.Background(), engine, tok, req, body.Service, time.Now())
	if err != nil {
		return CheckResult{}, err
	}
	return CheckResult{Allow: d.Allow, Reasons: nonNil(d.Reasons), Scope: d.Scope, PolicyRev: d.Revision}, nil
}

func policyTestCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy-test [DIR]",
		Short: "Runs the Rego tests (*_test.rego) in DIR (default ./policies) with OPA's test runner",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			dir := "policies"
			if len(args) == 1 {
				dir = args[0]
			}
			results, err := policy.RunTests(context.Background(), os.DirFS(dir))
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range results {
				status := "PASS"
				if !r.Passed {
					status, failed = "FAIL", failed+1
				}
				fmt.Fprintf(os.Stdout, "%s %s %s\n", status, r.Name, r.Detail)
			}
			fmt.Fprintf(os.Stdout, "%d passed, %d failed\n", len(results)-failed, failed)
			if failed > 0 || len(results) == 0 {
				return fmt.Errorf("%d of %d policy tests failed", failed, len(results))
			}
			return nil
		},
	}
	return cmd
}
