package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
	"github.com/tokengate/caddy-tokengate/store"
)

// startChildCaddy runs this test binary as Caddy (TestMain hands it to
// Caddy's command line when childCaddyVariable is set) in dir, with
// environ (NAME=value) added to its environment, on the admin address and
// Caddyfile next gives, and returns once every listener answers. It is
// killed and waited for when the test ends; what it printed is logged if
// the test failed.
func startChildCaddy(t *testing.T, dir string, environ []string, next func() (adminAddr, caddyfile string)) *caddyproc.Process {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := caddyproc.Command{Path: self, Env: append([]string{childCaddyVariable + "=1"}, environ...)}.StartOnFreePorts(t, dir, next)
	t.Cleanup(func() {
		// Stopped here rather than by the cleanup Start registered,
		// which runs after this one: what the race detector (go test
		// -race) finds in the child, it prints there, up to the end.
		p.Kill()
		if strings.Contains(p.Output(), "WARNING: DATA RACE") {
			t.Error("the race detector found a data race in the env's Caddy")
		}
		if t.Failed() {
			out := p.Output()
			if len(out) > 8<<10 {
				out = "…" + out[len(out)-8<<10:]
			}
			t.Logf("the env's Caddy printed:\n%s", out)
		}
	})
	return p
}

// The control routes are how a test reaches into its child Caddy, on the
// child's admin endpoint: only the test binary registers them, and only
// when it runs as a child.
const controlPrefix = "/tokengate-test/"

// testControl is the admin API module of those routes.
type testControl struct{}

func (testControl) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.tokengate_test", New: func() caddy.Module { return new(testControl) }}
}

func (testControl) Routes() []caddy.AdminRoute {
	route := func(name string, h func(w http.ResponseWriter, r *http.Request) error) caddy.AdminRoute {
		return caddy.AdminRoute{Pattern: controlPrefix + name, Handler: caddy.AdminHandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			if r.Method != http.MethodPost {
				return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("POST only")}
			}
			if err := h(w, r); err != nil {
				return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
			}
			return nil
		})}
	}
	return []caddy.AdminRoute{
		// ?advance=1h moves the clock on.
		route("clock", func(_ http.ResponseWriter, r *http.Request) error {
			d, err := time.ParseDuration(r.URL.Query().Get("advance"))
			if err != nil {
				return err
			}
			fakeClock.Advance(d)
			return nil
		}),
		// {"name": "X", "value": "v"} sets a variable of the Caddy's
		// environment, which {env.X} placeholders read when a config
		// loads; without a value it unsets it. (In the body: the admin
		// endpoint logs a request's query, and values may be secrets.)
		route("env", func(_ http.ResponseWriter, r *http.Request) error {
			var v struct {
				Name  string
				Value *string
			}
			if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
				return err
			}
			if v.Value == nil {
				return os.Unsetenv(v.Name)
			}
			return os.Setenv(v.Name, *v.Value)
		}),
		route("settle-decisions", func(http.ResponseWriter, *http.Request) error {
			settleDecisionCaches()
			return nil
		}),
		// Breaks the running app's store underneath it.
		route("close-store", func(http.ResponseWriter, *http.Request) error {
			app, err := appOfThisProcess()
			if err != nil {
				return err
			}
			return app.store.Close()
		}),
		// Answers whether each app of the runtimes writes audit lines.
		route("audit-enabled", func(w http.ResponseWriter, _ *http.Request) error {
			var enabled []bool
			runtimes.Range(func(_, v any) bool {
				for _, p := range v.(runtime).Attached() {
					enabled = append(enabled, p.Audit.Enabled())
				}
				return true
			})
			return json.NewEncoder(w).Encode(enabled)
		}),
		// Stores the token in the body as it is, through the running
		// app's own store and hasher, and answers its secret: records
		// older code would have written.
		route("plant-token", func(w http.ResponseWriter, r *http.Request) error {
			var tok store.Token
			if err := json.NewDecoder(r.Body).Decode(&tok); err != nil {
				return err
			}
			app, err := appOfThisProcess()
			if err != nil {
				return err
			}
			secret := app.manage.Tokens.Mint(&tok)
			if err := app.store.Create(r.Context(), &tok); err != nil {
				return err
			}
			return json.NewEncoder(w).Encode(secret)
		}),
		// Stores the request in the body as it is.
		route("plant-request", func(_ http.ResponseWriter, r *http.Request) error {
			var req store.Request
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				return err
			}
			app, err := appOfThisProcess()
			if err != nil {
				return err
			}
			return app.store.CreateRequest(r.Context(), &req)
		}),
	}
}

// appOfThisProcess is the tokengate app of the config running in this process.
func appOfThisProcess() (*App, error) {
	if app := currentApp(); app != nil {
		return app, nil
	}
	return nil, errors.New("no tokengate app is running")
}

// control calls one of the env's control routes with query and body (as
// JSON, when not nil), and decodes its JSON answer into out, when given.
func (e *env) control(name string, query url.Values, body, out any) {
	e.t.Helper()
	if e.proc == nil {
		e.t.Fatalf("control route %s: the env has no child Caddy", name)
	}
	u := e.adminURL + controlPrefix + name
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var in io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		in = bytes.NewReader(b)
	}
	resp, err := http.Post(u, "application/json", in)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b [512]byte
		n, _ := resp.Body.Read(b[:])
		e.t.Fatalf("control route %s: %d %s", name, resp.StatusCode, b[:n])
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			e.t.Fatalf("control route %s: %v", name, err)
		}
	}
}

// advance moves the clock of the env's Caddy on by d.
func (e *env) advance(d time.Duration) {
	e.t.Helper()
	if e.proc == nil {
		fakeClock.Advance(d)
	} else {
		e.control("clock", url.Values{"advance": {d.String()}}, nil, nil)
	}
	e.clockMu.Lock()
	e.clockOffset += d
	e.clockMu.Unlock()
}

// now is the time on the env's Caddy's clock.
func (e *env) now() time.Time {
	if e.proc == nil {
		return fakeClock.Now()
	}
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	return time.Now().Add(e.clockOffset)
}

// setenv sets a variable in the environment of the env's Caddy, for the
// configs it loads next.
func (e *env) setenv(name, value string) {
	e.t.Helper()
	e.control("env", nil, map[string]string{"name": name, "value": value}, nil)
}

// unsetenv removes a variable from the environment of the env's Caddy.
func (e *env) unsetenv(name string) {
	e.t.Helper()
	e.control("env", nil, map[string]string{"name": name}, nil)
}

// newConfigEnv starts a Caddy of the test's own on the config that config
// writes for its ports, with environ (NAME=value) added to its
// environment: for tests about the configs Caddy takes or refuses, so
// with no upstream and no checks at cleanup.
func newConfigEnv(t *testing.T, dir string, config func(envPorts) string, environ ...string) *env {
	t.Helper()
	e := &env{t: t, dir: dir}
	e.proc = startChildCaddy(t, filepath.Join(dir, "home"), environ, func() (string, string) {
		ports, err := pickPorts()
		if err != nil {
			t.Fatal(err)
		}
		e.setPorts(ports)
		return fmt.Sprintf("localhost:%d", ports.admin), config(ports)
	})
	settleServers(e.gateURL)
	return e
}

// newInProcessConfigEnv is newConfigEnv on the one Caddy in this process,
// for a test that measures that process. Such a test must not be
// parallel.
func newInProcessConfigEnv(t *testing.T, dir string, config func(envPorts) string) *env {
	t.Helper()
	e := &env{t: t, dir: dir}
	e.setPorts(inProcessPorts)
	caddytest.NewTester(t).InitServer(config(e.ports), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return e
}

// settleDecisionCaches returns once every decision the env's gates have
// cached can be read back (ristretto applies writes asynchronously), so a
// test can say the next identical call is a hit.
func (e *env) settleDecisionCaches() {
	e.t.Helper()
	if e.proc == nil {
		settleDecisionCaches()
		return
	}
	e.control("settle-decisions", nil, nil, nil)
}

// appDataDir is Caddy's data folder (caddy.AppDataDir) in the env's Caddy.
func (e *env) appDataDir() string {
	if e.proc == nil {
		return caddy.AppDataDir()
	}
	return filepath.Join(e.proc.Dir, "data", "caddy")
}

// closeStore breaks the store underneath the env's running gateway.
func (e *env) closeStore() {
	e.t.Helper()
	e.control("close-store", nil, nil, nil)
}

// auditEnabled answers, for each app the env's Caddy runs, whether it
// writes audit lines.
func (e *env) auditEnabled() []bool {
	e.t.Helper()
	var enabled []bool
	e.control("audit-enabled", nil, nil, &enabled)
	return enabled
}
