package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
	"github.com/tokengate/caddy-tokengate/internal/token"
)

func TestMain(m *testing.M) {
	code := m.Run()
	caddyproc.RemoveBinary()
	os.Exit(code)
}

// run runs one caddy tokengate command and returns its error.
func run(cmd *cobra.Command, args ...string) error {
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceUsage = true
	return cmd.Execute()
}

// TestRefusalsOfARealAPI runs a real gateway and calls its management API
// and Caddy's admin endpoint as the commands do: each refusal comes out
// as a reason.Refusal with its code, the class of its code (or, for a
// code the admin policy invents, of its status) and the detail, printed
// as before: "code: detail", with a hint where the code alone says too
// little.
func TestRefusalsOfARealAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the caddy binary")
	}
	dir := t.TempDir()
	var mgmt string
	p := caddyproc.StartOnFreePorts(t, dir, func() (string, string) {
		admin := fmt.Sprintf("127.0.0.1:%d", caddyproc.FreePort(t))
		mgmt = fmt.Sprintf("http://127.0.0.1:%d", caddyproc.FreePort(t))
		return admin, fmt.Sprintf(`{
	admin %s
	tokengate {
		store bolt %s
	}
}
%s {
	bind 127.0.0.1
	tokengate_admin
}
`, admin, filepath.Join(dir, "tokens.db"), mgmt)
	})
	t.Setenv("TOKENGATE_API", "")
	t.Setenv("TOKENGATE_TOKEN", "")

	for _, c := range []struct {
		name    string
		env     string // TOKENGATE_TOKEN
		cmd     *cobra.Command
		args    []string
		code    string
		class   reason.Class
		printed string
	}{{
		name: "a management token the store does not know",
		env:  token.NewSecret(),
		cmd:  listCommand(), args: []string{"--api", mgmt},
		code: reason.TokenUnknown, class: reason.Invalid, printed: "token_unknown",
	}, {
		name: "a management token with a bad checksum",
		env:  "tg_notARealSecretButLooksLikeOne0123456789",
		cmd:  listCommand(), args: []string{"--api", mgmt},
		code: reason.TokenMalformed, class: reason.Invalid, printed: "token_malformed",
	}, {
		name: "revoking a token that does not exist",
		cmd:  revokeCommand(), args: []string{"tok_doesNotExist0123456789", "--reason", "cli test", "--address", p.Admin},
		code: reason.TokenNotFound, class: reason.NotFound, printed: "token_not_found: ",
	}, {
		name: "the local operator past the admin policy's bounds",
		cmd:  issueCommand(), args: []string{"--owner", "alice", "--purpose", "cli test", "--scope", "billing:write", "--service", "billing", "--ttl", "30m", "--address", p.Admin},
		code: localOperatorBoundsCode, class: reason.Forbidden, printed: "local_operator_bounds",
	}} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("TOKENGATE_TOKEN", c.env)
			err := run(c.cmd, c.args...)
			var r *reason.Refusal
			if !errors.As(err, &r) {
				t.Fatalf("error %v (%T) is no reason.Refusal", err, err)
			}
			if r.Code != c.code || r.Class != c.class {
				t.Errorf("refusal %s of class %d, want %s of class %d", r.Code, r.Class, c.code, c.class)
			}
			if !strings.HasPrefix(err.Error(), c.printed) {
				t.Errorf("printed %q, want it to start with %q", err, c.printed)
			}
			if hinted := strings.Contains(err.Error(), localOperatorBounds); hinted != (c.code == localOperatorBoundsCode) {
				t.Errorf("printed %q: the local operator's bounds shown %v", err, hinted)
			}
		})
	}
}
