package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/textcheck"
)

// unreachable is a connection to an endpoint that could not be made. A
// bare "dial tcp ...: connection refused" leaves the operator to guess
// which endpoint the CLI chose and why; this names it, says what the dial
// saw, and what to check.
type unreachable struct {
	endpoint string // "the management API"
	where    string // the URL or address, without credentials
	check    string // what the operator should look at
	err      error
}

func (u *unreachable) Error() string {
	return textcheck.Printable(fmt.Sprintf("cannot reach %s at %s: %v; %s", u.endpoint, u.where, dialProblem(u.err), u.check))
}

func (u *unreachable) Unwrap() error { return u.err }

// dialProblem is what the dial saw, without the "dial tcp host:port:
// connect:" layers that repeat the address the message names already.
func dialProblem(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	var sc *os.SyscallError
	if errors.As(err, &sc) && sc.Err != nil {
		err = sc.Err
	}
	return err
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// explainDial wraps dial so that a failure says which endpoint could not
// be reached and what to check.
func explainDial(dial dialFunc, endpoint, where, check string) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, &unreachable{endpoint: endpoint, where: where, check: check, err: err}
		}
		return conn, nil
	}
}

// asUnreachable returns the unreachable error inside err alone, without
// the "calling URL: Get URL:" layers the HTTP client wraps it in, or err
// unchanged.
func asUnreachable(err error) error {
	var u *unreachable
	if errors.As(err, &u) {
		return u
	}
	return err
}

// remoteHTTP is the HTTP client for a remote management API: Go's default
// transport (proxy from the environment, TLS, keep-alives), with dial
// failures explained.
func remoteHTTP(base *url.URL) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t.DialContext = explainDial(d.DialContext, "the management API", base.Redacted(),
		"is the gateway running there, and are --api and TOKENGATE_API right?")
	return &http.Client{Timeout: 30 * time.Second, Transport: t}
}

// parseAPI checks that a --api value is a URL the client can call: a
// typo such as a missing scheme would otherwise surface as "unsupported
// protocol scheme" on the first call. The value is echoed without its
// password, if it holds one.
func parseAPI(raw string) (*url.URL, error) {
	const want = "--api (or TOKENGATE_API) must be the management API's http or https URL, such as https://gateway.example.com"
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New(want + "; got a value that is no URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s; got %s", want, textcheck.Printable(u.Redacted()))
	}
	return u, nil
}
