// Package caddyproc builds the tokengate Caddy binary and runs it as a real
// process, for tests that need what only a process gives: kill -9, several
// nodes, the CLI as a user types it.
package caddyproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// goCaches names the go command's own caches and settings as they were
// when the test process started. A TestMain points HOME and the XDG
// folders at a temporary folder before the build below runs, and the go
// command derives its defaults from them: without these, the build would
// start from an empty cache and compile Caddy and OPA from scratch, long
// enough to run a package past go test's 10-minute limit. Set once, at
// package initialisation, never changed.
var goCaches = func() []string {
	var env []string
	if os.Getenv("GOCACHE") == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			env = append(env, "GOCACHE="+filepath.Join(dir, "go-build"))
		}
	}
	if os.Getenv("GOENV") == "" {
		if dir, err := os.UserConfigDir(); err == nil {
			env = append(env, "GOENV="+filepath.Join(dir, "go", "env"))
		}
	}
	if os.Getenv("GOPATH") == "" {
		if dir, err := os.UserHomeDir(); err == nil {
			env = append(env, "GOPATH="+filepath.Join(dir, "go"))
		}
	}
	return env
}()

// Binary builds ./cmd/caddy once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tokengate-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/caddy")
		cmd.Dir = RepoRoot(t)
		cmd.Env = append(os.Environ(), goCaches...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// RemoveBinary deletes the binary Binary built, if any. A TestMain calls
// it after m.Run, so test runs leave nothing behind in the temp folder.
func RemoveBinary() {
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
}

// RepoRoot returns the repository's top folder.
func RepoRoot(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the repository")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := PickPort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// PickPort returns a port free on 127.0.0.1 and ::1 a moment ago, taken
// below the kernel's ephemeral range (32768 and up on Linux): a port the
// kernel handed out for a listener is also one it hands to outgoing
// connections, and one of those could hold it when Caddy binds it later
// ("address already in use", seen in CI while apt fetched packages).
func PickPort() (int, error) {
	for range 200 {
		port := 20000 + rand.IntN(12000)
		v4, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		v6, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", port))
		v4.Close()
		if err != nil {
			continue
		}
		v6.Close()
		return port, nil
	}
	return 0, errors.New("no free port found between 20000 and 32000")
}

// Process is one running Caddy.
type Process struct {
	cmd    *exec.Cmd
	Dir    string // working directory, also HOME and XDG dirs
	Admin  string // admin endpoint address, host:port
	output *lockedBuffer
	exited chan struct{}
}

// Start runs `caddy run` with the given Caddyfile in dir (created if need
// be) and waits until its admin endpoint answers. The process's HOME and
// XDG folders point into dir, so it never touches the real user's data.
// It is killed when the test ends.
func Start(t testing.TB, dir, adminAddr, caddyfile string) *Process {
	t.Helper()
	p, err := start(t, dir, adminAddr, caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// StartOnFreePorts is Start with ports chosen at run time: next picks
// them (FreePort) and returns the admin address and the Caddyfile. A port
// is only free when it was checked; any process (an outgoing connection's
// local port too) may take it before Caddy binds, so a start that fails
// with "address already in use" is tried again with new ports, up to five
// times.
func StartOnFreePorts(t testing.TB, dir string, next func() (adminAddr, caddyfile string)) *Process {
	t.Helper()
	for attempt := 1; ; attempt++ {
		adminAddr, caddyfile := next()
		p, err := start(t, dir, adminAddr, caddyfile)
		if err == nil {
			return p
		}
		if attempt == 5 || !strings.Contains(p.Output(), "address already in use") {
			t.Fatal(err)
		}
	}
}

func start(t testing.TB, dir, adminAddr, caddyfile string) (*Process, error) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Process{Dir: dir, Admin: adminAddr, output: new(lockedBuffer), exited: make(chan struct{})}
	p.cmd = exec.Command(Binary(t), "run", "--config", "Caddyfile", "--adapter", "caddyfile")
	p.cmd.Dir = dir
	p.cmd.Env = p.Env()
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.Kill)
	client, base := AdminClient(adminAddr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The admin endpoint answers before the HTTP servers have bound
		// their ports: the start is done when every listener accepts.
		listeners, err := httpListeners(client, base)
		if err == nil {
			err = dialAll(listeners)
		}
		if err == nil {
			return p, nil
		}
		if p.Exited() || time.Now().After(deadline) {
			p.Kill()
			return p, fmt.Errorf("caddy did not start: %v\n%s", err, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// httpListeners returns the TCP addresses the running config's HTTP
// servers listen on, as host:port (a bare :port is dialled on 127.0.0.1).
func httpListeners(client *http.Client, base string) ([]string, error) {
	resp, err := client.Get(base + "/config/apps/http/servers")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The admin endpoint answers: a config without HTTP servers
		// (the admin endpoint only) has nothing else to wait for.
		return nil, nil
	}
	var servers map[string]struct {
		Listen []string `json:"listen"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&servers); err != nil {
		return nil, fmt.Errorf("reading the servers: %v", err)
	}
	var addrs []string
	for _, srv := range servers {
		for _, l := range srv.Listen {
			network, addr, _ := strings.Cut(l, "/")
			if addr == "" {
				network, addr = "tcp", l
			}
			if !strings.HasPrefix(network, "tcp") || strings.Contains(addr, "-") {
				continue // unix sockets and port ranges are not dialled
			}
			if strings.HasPrefix(addr, ":") {
				addr = "127.0.0.1" + addr
			}
			addrs = append(addrs, addr)
		}
	}
	return addrs, nil
}

// dialAll returns nil when a connection to every address is accepted.
func dialAll(addrs []string) error {
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

// AdminClient returns a client for Caddy's admin endpoint at adminAddr,
// written as in a Caddyfile (host:port, or unix/<path> for a socket), and
// the base URL to put paths on.
func AdminClient(adminAddr string) (*http.Client, string) {
	socket, ok := strings.CutPrefix(adminAddr, "unix/")
	if !ok {
		return http.DefaultClient, "http://" + adminAddr
	}
	socket, _, _ = strings.Cut(socket, "|") // the file mode, if any
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, "unix", socket)
		},
	}}, "http://127.0.0.1"
}

// Env is the environment the process (and CLI calls against it) run with.
func (p *Process) Env() []string {
	return append(os.Environ(),
		"HOME="+p.Dir,
		"XDG_DATA_HOME="+filepath.Join(p.Dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(p.Dir, "config"),
		"XDG_CACHE_HOME="+filepath.Join(p.Dir, "cache"),
		"XDG_STATE_HOME="+filepath.Join(p.Dir, "state"),
	)
}

// CLI runs `caddy <args...>` against this process's admin endpoint and
// returns stdout and stderr separately.
func (p *Process) CLI(t testing.TB, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Dir = p.Dir
	cmd.Env = append(p.Env(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// Kill sends SIGKILL: no shutdown hooks, no flushing, like a crash.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Output returns everything the process printed so far.
func (p *Process) Output() string { return p.output.String() }

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
