package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/signin"
)

// remoteAPI is the management API a command names, --api or else
// TOKENGATE_API.
func remoteAPI(flag string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv("TOKENGATE_API")
}

func loginCommand() *cobra.Command {
	var (
		apiURL, issuer, clientID string
		scopes                   []string
		device, noBrowser        bool
		timeout                  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "login --api URL [--device]",
		Short: "Signs in with the gateway's OpenID provider, for the remote commands",
		Long: `Signs in with the OpenID provider the gateway trusts (its oidc option) and
keeps the tokens in the user's config folder (credentials.json in a
tokengate folder, mode 0600), filed under the API URL. The remote commands
then call that API with the ID token, refreshing it when it is about to
expire; TOKENGATE_TOKEN, when set, still wins.

The issuer, client id and scopes come from the API (GET /v1/auth/oidc);
--issuer, --client-id and --scope override them.

Without --device, a browser on this machine signs in (authorization code
flow with PKCE; the provider redirects to http://127.0.0.1:<port>/callback,
a port chosen now). The URL to open is printed on stderr. With --device,
any device signs in: open the printed URL there and enter the code shown.`,
		Example: `  caddy tokengate login --api https://gw.example.com:8443
  caddy tokengate login --api https://gw.example.com:8443 --device`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			remote := remoteAPI(apiURL)
			if remote == "" {
				return errors.New("name the management API to sign in to with --api URL (or TOKENGATE_API)")
			}
			if err := signin.RequireSecure("--api", remote); err != nil {
				return err
			}
			st, err := signin.DefaultStore()
			if err != nil {
				return err
			}
			conf := api.SignInConfig{Issuer: issuer, ClientID: clientID}
			if issuer == "" || clientID == "" {
				if conf, err = signInConfig(cmd.Context(), remote); err != nil {
					return err
				}
				if issuer != "" {
					conf.Issuer = issuer
				}
				if clientID != "" {
					conf.ClientID = clientID
				}
			}
			if len(scopes) > 0 {
				conf.Scopes = scopes
			}
			c := &signin.Client{Issuer: conf.Issuer, ClientID: conf.ClientID, Scopes: conf.Scopes, Prompt: os.Stderr}
			if !noBrowser {
				c.Browser = openBrowser
			}
			var sess signin.Session
			if device {
				sess, err = c.Device(cmd.Context())
			} else {
				sess, err = c.Code(cmd.Context(), timeout)
			}
			if err != nil {
				return err
			}
			if err := mayManage(cmd.Context(), remote, sess.IDToken); err != nil {
				return err
			}
			if err := st.Save(remote, sess); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "Signed in to %s as %s (the ID token expires %s; it is refreshed as needed). Tokens kept in %s.\n",
				show(remote), show(sess.Subject), sess.Expiry.Format(time.RFC3339), show(st.Path))
			return nil
		},
	}
	cmd.Flags().StringVar(&apiURL, "api", "", "management API base URL (default $TOKENGATE_API)")
	cmd.Flags().BoolVar(&device, "device", false, "sign in on another device (device authorization grant), for a shell without a browser")
	cmd.Flags().StringVar(&issuer, "issuer", "", "OpenID provider's issuer URL (default: what the API names)")
	cmd.Flags().StringVar(&clientID, "client-id", "", "OAuth client id (default: what the API names)")
	cmd.Flags().StringArrayVar(&scopes, "scope", nil, "scope to ask the provider for (repeatable; default: what the API names)")
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "only print the URL to open, never start a browser")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the browser sign-in")
	return cmd
}

// signInConfig asks the API how people sign in to it.
func signInConfig(ctx context.Context, remote string) (api.SignInConfig, error) {
	base, err := parseAPI(remote)
	if err != nil {
		return api.SignInConfig{}, err
	}
	cl := api.NewRemote(remote, "")
	cl.HTTP = remoteHTTP(base)
	conf, err := cl.SignInConfig(ctx)
	if r, ok := refusalOf(err); ok {
		if r.Code == reason.SigninNotConfigured {
			return conf, fmt.Errorf("the gateway at %s has no sign-in: its tokengate options name no oidc issuer (use a management token in TOKENGATE_TOKEN instead)", show(remote))
		}
		return conf, fmt.Errorf("asking %s how to sign in: %v (a gateway without sign-in support answers so; pass --issuer and --client-id)", show(remote), err)
	}
	if err != nil {
		return conf, fmt.Errorf("asking %s how to sign in: %v", show(remote), asUnreachable(err))
	}
	return conf, nil
}

// mayManage asks the API once with the new ID token, so that a person the
// gateway does not let sign in (its oidc allow_domains and allow_groups)
// learns it now, and no session that cannot work is kept. Any other
// answer, a refusal by the admin policy included, leaves the sign-in to
// stand: what the person may do is asked per command.
func mayManage(ctx context.Context, remote, idToken string) error {
	base, err := parseAPI(remote)
	if err != nil {
		return err
	}
	cl := api.NewRemote(remote, idToken)
	cl.HTTP = remoteHTTP(base)
	_, err = cl.ListRequests(ctx, "pending")
	if r, ok := refusalOf(err); ok && r.Code == reason.SigninNotAllowed {
		return notAllowed(remote)
	}
	return nil
}

// notAllowed says why a signed-in person gets nowhere at remote.
func notAllowed(remote string) error {
	return fmt.Errorf("the gateway at %s does not let you sign in (signin_not_allowed): its oidc allow_domains and allow_groups name neither your verified email's domain nor any of your groups. Ask its operator, or use a management token in TOKENGATE_TOKEN", show(remote))
}

func logoutCommand() *cobra.Command {
	var apiURL string
	cmd := &cobra.Command{
		Use:   "logout [--api URL]",
		Short: "Forgets the sign-in to one management API, or to all of them",
		Long: `Forgets the tokens login kept for the API (--api or TOKENGATE_API), or
for every API when neither is given, and asks the OpenID provider to
revoke the refresh token when it offers a revocation endpoint.`,
		Example: `  caddy tokengate logout --api https://gw.example.com:8443
  caddy tokengate logout`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := signin.DefaultStore()
			if err != nil {
				return err
			}
			remote := remoteAPI(apiURL)
			var gone map[string]signin.Session
			if remote == "" {
				gone, err = st.DeleteAll()
			} else {
				var sess signin.Session
				var ok bool
				sess, ok, err = st.Delete(remote)
				if ok {
					gone = map[string]signin.Session{remote: sess}
				}
			}
			if err != nil {
				return err
			}
			if len(gone) == 0 {
				fmt.Fprintln(os.Stderr, "Not signed in; nothing to forget.")
				return nil
			}
			for where, sess := range gone {
				// The tokens are forgotten already; a provider that cannot
				// revoke only leaves a refresh token no one holds any more.
				if _, err := signin.Revoke(cmd.Context(), sess, nil); err != nil {
					fmt.Fprintf(os.Stderr, "Warning: %v\n", err)
				}
				fmt.Fprintf(os.Stderr, "Signed out of %s.\n", show(where))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&apiURL, "api", "", "management API base URL (default $TOKENGATE_API; without either, every sign-in)")
	return cmd
}

// credential is what a remote command calls remote with:
// TOKENGATE_TOKEN when set (automation keeps working as it did), else the
// ID token of the sign-in kept for remote, refreshed first when it is
// about to expire.
func credential(ctx context.Context, remote string) (string, error) {
	if secret := os.Getenv("TOKENGATE_TOKEN"); secret != "" {
		return secret, nil
	}
	login := fmt.Sprintf("run `caddy tokengate login --api %s`, or set TOKENGATE_TOKEN to a management token (it is never taken from the command line)", show(remote))
	st, err := signin.DefaultStore()
	if err != nil {
		return "", err
	}
	sess, ok, err := st.Load(remote)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("not signed in to %s: %s", show(remote), login)
	}
	fresh, changed, err := signin.Fresh(ctx, sess, nil, nil)
	if errors.Is(err, signin.ErrSignInExpired) {
		// Another command may have refreshed at the same moment and spent
		// the refresh token this one read (providers rotate them): the
		// file then holds its result.
		if again, ok, _ := st.Load(remote); ok && again.RefreshToken != sess.RefreshToken {
			fresh, changed, err = signin.Fresh(ctx, again, nil, nil)
		}
	}
	if errors.Is(err, signin.ErrSignInExpired) {
		return "", fmt.Errorf("%v: %s", err, login)
	}
	if err != nil {
		return "", err
	}
	if changed {
		if err := st.Save(remote, fresh); err != nil {
			return "", err
		}
	}
	return fresh.IDToken, nil
}

// openBrowser starts the desktop's browser on u when there is a desktop
// here. It is only a convenience: the URL is printed either way, so a
// failure is ignored. The URL carries no secret (PKCE keeps the verifier
// in this process), so it may sit in a process list.
func openBrowser(u string) {
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return
	}
	if os.Getenv("SSH_CONNECTION") != "" {
		return // the browser would open on another person's screen, or none
	}
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return
		}
		cmd = exec.Command("xdg-open", u)
	}
	if cmd.Start() == nil {
		go func() { _ = cmd.Wait() }()
	}
}
