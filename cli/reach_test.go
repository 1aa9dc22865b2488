package cli

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// closedPort returns a loopback address where nothing listens: a port
// chosen free at run time, then let go.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// runList runs `caddy tokengate list` with args and returns its error.
func runList(t *testing.T, args ...string) error {
	t.Helper()
	cmd := listCommand()
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceUsage = true
	err := cmd.Execute()
	if err == nil {
		t.Fatalf("list %v succeeded with nothing listening", args)
	}
	return err
}

// TestUnreachableEndpointsSayWhatToCheck: when nothing answers, the error
// names the endpoint the CLI chose and what to check, not only the dial's
// "connection refused"; it never shows the management token or a
// password in the URL.
func TestUnreachableEndpointsSayWhatToCheck(t *testing.T) {
	const secret = "tg_notARealSecretButLooksLikeOne0123456789"
	t.Setenv("TOKENGATE_TOKEN", secret)
	t.Setenv("TOKENGATE_API", "")
	addr := closedPort(t)

	cases := []struct {
		name  string
		args  []string
		want  []string
		never []string
	}{{
		name: "remote --api",
		args: []string{"--api", "http://" + addr},
		want: []string{"cannot reach the management API at http://" + addr + ":", "connection refused",
			"is the gateway running", "--api", "TOKENGATE_API"},
	}, {
		name:  "remote --api with a password in the URL",
		args:  []string{"--api", "http://ops:hunter2@" + addr + "/"},
		want:  []string{"cannot reach the management API at http://ops:xxxxx@" + addr},
		never: []string{"hunter2"},
	}, {
		name: "local --address",
		args: []string{"--address", addr},
		want: []string{"cannot reach Caddy's admin endpoint at " + addr + ":", "connection refused",
			"is Caddy running?", "--address"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := runList(t, c.args...).Error()
			t.Log(msg)
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			// The layers Go's HTTP client adds repeat the address and
			// bury the explanation.
			for _, n := range append(c.never, secret[3:], "dial tcp", "Get \"") {
				if strings.Contains(msg, n) {
					t.Errorf("error %q contains %q", msg, n)
				}
			}
		})
	}
}

// TestAPIMustBeAnHTTPURL: a --api without a scheme is refused before any
// call, saying what is expected, and echoed without its password.
func TestAPIMustBeAnHTTPURL(t *testing.T) {
	t.Setenv("TOKENGATE_TOKEN", "tg_x")
	for _, api := range []string{"gateway.example.com:8443", "ftp://gateway.example.com", "https://", "ftp://ops:hunter2@gateway.example.com", "http://[::1"} {
		msg := runList(t, "--api", api).Error()
		if !strings.Contains(msg, "must be the management API's http or https URL") || strings.Contains(msg, "hunter2") {
			t.Errorf("--api %s: %s", api, msg)
		}
	}
}

// TestErrorsNeverShowTheURLPassword: a --api URL may carry basic-auth
// credentials for a proxy in front of the gateway; an answer the client
// cannot read is reported without them.
func TestErrorsNeverShowTheURLPassword(t *testing.T) {
	t.Setenv("TOKENGATE_TOKEN", "tg_x")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html>a proxy's page, not the API's JSON</html>")
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	u.User = url.UserPassword("ops", "hunter2")
	msg := runList(t, "--api", u.String()).Error()
	if !strings.Contains(msg, "reading the answer of http://ops:xxxxx@"+u.Host) || strings.Contains(msg, "hunter2") {
		t.Errorf("error %q", msg)
	}
}
