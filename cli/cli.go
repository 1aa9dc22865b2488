// Package cli is the `caddy tokengate ...` command: glue between Caddy's
// command line and the management API's client in package api. It talks
// to Caddy's local admin endpoint or to a remote tokengate_admin site, and
// prints what the API answers, escaped for a terminal.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/textcheck"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "tokengate",
		Usage: "<subcommand> [flags]",
		Short: "Manages tokengate API tokens",
		Long: `Manages tokengate API tokens.

Without --api, subcommands talk to Caddy's local admin endpoint (found as
'caddy reload' finds it: --address, or the admin address in --config) as
the principal "local-operator", whose powers policies/admin.rego bounds:
as shipped, it may issue and rotate read-only tokens living at most 1h,
and always revoke; anything more goes through the management API, where
one person requests and another approves.

With --api URL (or TOKENGATE_API), they call a tokengate_admin management
API as the owner of the management token in TOKENGATE_TOKEN, or, without
it, as the person signed in to that API with 'caddy tokengate login'. The
token is read from the environment or the sign-in only, never from the
command line, where it would land in shell history and process lists.

Secrets are printed exactly once, alone on one line of stdout; every other
message goes to stderr. --json prints JSON on stdout instead.

check exits with status 3 when the decision is a deny.`,
		CobraFunc: func(cmd *cobra.Command) {
			// Caddy's root command ends every help page with a pointer to
			// caddyserver.com, which does not document tokengate; the
			// subcommands inherit this template instead.
			cmd.SetHelpTemplate(new(cobra.Command).HelpTemplate() + "\n" + helpFooter + "\n")
			cmd.Example = `  caddy tokengate bootstrap --requester alice --approver bob
  caddy tokengate issue --owner ci --purpose "nightly export" --scope billing:read --service billing --ttl 24h
  TOKENGATE_API=https://gw.example.com:8443 caddy tokengate approve req_...`
			cmd.AddCommand(
				bootstrapCommand(), issueCommand(), requestCommand(),
				decideCommand("approve", "Approves"), decideCommand("deny", "Denies"), claimCommand(),
				listCommand(), showCommand(), rotateCommand(), revokeCommand(),
				reportCommand(), checkCommand(), policyTestCommand(), backupCommand(), breakGlassCommand(),
				loginCommand(), logoutCommand(), auditCommand(), leaksCommand(),
			)
		},
	})
}

// helpFooter ends every help page of caddy tokengate.
const helpFooter = "Full documentation: https://github.com/tokengate/caddy-tokengate#readme"

// reach says which endpoints a command can talk to.
type reach int

const (
	// localOnly commands talk to Caddy's admin endpoint only.
	localOnly reach = iota
	// localOrRemote commands take --api, else use the admin endpoint.
	localOrRemote
	// remoteOnly commands exist on the management API only: the local
	// operator is not a person who could ask for, approve or claim a token.
	remoteOnly
)

// errNeedsAPI answers a remote-only command run without --api, before it
// reaches the admin endpoint, whose only answer would be "route_unknown".
var errNeedsAPI = errors.New("this command needs the management API (--api or TOKENGATE_API); Caddy's local admin endpoint does not serve it")

// conn holds the flags that choose the endpoint and the output.
type conn struct {
	address, config, adapter string
	api                      string
	json                     bool
	needsAPI                 bool
}

func (c *conn) register(cmd *cobra.Command, r reach) {
	remote := r != localOnly
	c.needsAPI = r == remoteOnly
	cmd.Flags().StringVar(&c.address, "address", "", "address of Caddy's admin endpoint")
	cmd.Flags().StringVarP(&c.config, "config", "c", "", "config file to read the admin address from")
	cmd.Flags().StringVarP(&c.adapter, "adapter", "a", "", "adapter for --config")
	if remote {
		cmd.Flags().StringVar(&c.api, "api", "", "management API base URL (default $TOKENGATE_API); the credential comes from $TOKENGATE_TOKEN, else from login")
	}
	cmd.Flags().BoolVar(&c.json, "json", false, "print JSON")
}

// client returns the client of the management API when one is named,
// else of Caddy's local admin endpoint.
func (c *conn) client(ctx context.Context) (*api.Client, error) {
	if remote := remoteAPI(c.api); remote != "" {
		base, err := parseAPI(remote)
		if err != nil {
			return nil, err
		}
		secret, err := credential(ctx, remote)
		if err != nil {
			return nil, err
		}
		cl := api.NewRemote(remote, secret)
		cl.HTTP = remoteHTTP(base)
		return cl, nil
	}
	if c.needsAPI {
		return nil, errNeedsAPI
	}
	addr, err := caddycmd.DetermineAdminAPIAddress(c.address, nil, c.config, c.adapter)
	if err != nil {
		return nil, fmt.Errorf("finding the admin endpoint: %v", err)
	}
	return adminClient(addr)
}

// adminClient reaches Caddy's admin endpoint the way caddycmd's
// AdminAPIRequest does (the network the address names, a unix socket
// included, and the Origin header the endpoint checks), but leaves the
// answer to the api client, so that a refusal arrives as a typed error
// with its reason code rather than as text.
func adminClient(addr string) (*api.Client, error) {
	na, err := caddy.ParseNetworkAddress(addr)
	if err != nil || na.PortRangeSize() > 1 {
		return nil, fmt.Errorf("invalid admin address %s: %v", addr, err)
	}
	origin, header := "http://"+na.JoinHostPort(0), http.Header{}
	if na.IsUnixNetwork() || na.IsFdNetwork() {
		// Any host will do on a socket; Caddy accepts only loopback ones.
		origin = "http://127.0.0.1"
		// A unix address may end in the socket's permission bits: "|0220".
		na.Host, _, _ = strings.Cut(na.Host, "|")
	} else {
		header.Set("Origin", origin)
	}
	var d net.Dialer
	// The usual cause of a failed dial is no Caddy at that address: say
	// how to point at the right one rather than only what the dial saw.
	dial := explainDial(func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, na.Network, na.JoinHostPort(0))
	}, "Caddy's admin endpoint", addr, "is Caddy running? point at its admin endpoint with --address, or --config")
	return &api.Client{
		BaseURL: origin + "/tokengate",
		Header:  header,
		HTTP:    &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dial}},
	}, nil
}

// call makes a command out of one API call and the text that shows its
// answer; --json prints the answer itself.
func call[T any](c *conn, do func(context.Context, *api.Client, []string) (T, error), text func(T, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cl, err := c.client(cmd.Context())
		if err != nil {
			return err
		}
		out, err := do(cmd.Context(), cl, args)
		if r, ok := refusalOf(err); ok && r.Code == reason.SigninNotAllowed {
			return notAllowed(remoteAPI(c.api))
		}
		if err != nil {
			return explain(err)
		}
		if c.json {
			return printJSON(out)
		}
		return text(out, args)
	}
}

// command completes cmd as one API call with the endpoint flags r allows.
func command[T any](cmd *cobra.Command, r reach, do func(context.Context, *api.Client, []string) (T, error), text func(T, []string) error) *cobra.Command {
	c := new(conn)
	cmd.RunE = call(c, do, text)
	c.register(cmd, r)
	return cmd
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
func printSecret(issued api.IssuedToken, what string) error {
	fmt.Fprintln(os.Stdout, issued.Secret)
	describe(what, issued.Token)
	fmt.Fprintln(os.Stderr, "The secret above is shown only once.")
	return nil
}

func describe(what string, t api.TokenView) {
	fmt.Fprintf(os.Stderr, "%s %s for %s (%s), held by %s, scopes %s, services %s, expires %s.\n",
		what, show(t.ID), show(t.Owner), show(t.Purpose), show(t.HeldBy), showList(t.Scopes), showList(t.Services), t.ExpiresAt.Format(time.RFC3339))
}
