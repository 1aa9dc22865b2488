// Package caddyproc builds the tokengate Caddy binary and runs it as a real
// process, for tests that need what only a process gives: kill -9, several
// nodes, the CLI as a user types it.
package caddyproc

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
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
//
// It never returns the same port twice, in one test process or across
// the test processes of the machine (holdAcrossProcesses): tests that run
// side by side each start their own Caddy, and Caddy binds with
// SO_REUSEPORT, so two of them given one port would both bind it and
// silently share its traffic instead of failing.
func PickPort() (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		if handedOut.ports[port] {
			continue
		}
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
		claim, err := holdAcrossProcesses(port)
		if err != nil {
			continue // another test process picked it
		}
		handedOut.ports[port] = true
		handedOut.claims = append(handedOut.claims, claim)
		return port, nil
	}
	return 0, errors.New("no free port found between 20000 and 32000")
}

// handedOut is every port PickPort returned in this process. The kernel
// cannot say that a port was promised to a Caddy not started yet, so the
// process keeps count itself.
var handedOut = struct {
	sync.Mutex
	ports  map[int]bool
	claims []io.Closer // held until the process ends
}{ports: map[int]bool{}}

// Command says which binary runs as Caddy and what environment it gets
// beyond Process.Env. The zero Command runs ./cmd/caddy, built by Binary;
// a test binary that runs itself as Caddy (with the modules only its
// tests register) names itself and the variable that tells it to.
type Command struct {
	Path string   // the binary; Binary's build when empty
	Env  []string // more variables, NAME=value
}

func (c Command) path(t testing.TB) string {
	if c.Path != "" {
		return c.Path
	}
	return Binary(t)
}

// Process is one running Caddy.
type Process struct {
	cmd    *exec.Cmd
	with   Command
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
	return Command{}.Start(t, dir, adminAddr, caddyfile)
}

// StartOnFreePorts is Start with ports chosen at run time: next picks
// them (FreePort) and returns the admin address and the Caddyfile. A port
// is only free when it was checked; any process (an outgoing connection's
// local port too) may take it before Caddy binds, so a start that fails
// with "address already in use" is tried again with new ports, up to five
// times.
func StartOnFreePorts(t testing.TB, dir string, next func() (adminAddr, caddyfile string)) *Process {
	t.Helper()
	return Command{}.StartOnFreePorts(t, dir, next)
}

// Start is the package's Start with this command.
func (c Command) Start(t testing.TB, dir, adminAddr, caddyfile string) *Process {
	t.Helper()
	p, err := c.start(t, dir, adminAddr, caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// StartOnFreePorts is the package's StartOnFreePorts with this command.
func (c Command) StartOnFreePorts(t testing.TB, dir string, next func() (adminAddr, caddyfile string)) *Process {
	t.Helper()
	for attempt := 1; ; attempt++ {
		adminAddr, caddyfile := next()
		p, err := c.start(t, dir, adminAddr, caddyfile)
		if err == nil {
			return p
		}
		if attempt == 5 || !strings.Contains(p.Output(), "address already in use") {
			t.Fatal(err)
		}
	}
}

func (c Command) start(t testing.TB, dir, adminAddr, caddyfile string) (*Process, error) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Process{with: c, Dir: dir, Admin: adminAddr, output: new(lockedBuffer), exited: make(chan struct{})}
	p.cmd = exec.Command(c.path(t), "run", "--config", "Caddyfile", "--adapter", "caddyfile")
	p.cmd.Dir = dir
	p.cmd.Env = p.Env()
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	dieWithParent(p.cmd)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.Kill)
	if err := p.waitListening(30 * time.Second); err != nil {
		p.Kill()
		return p, fmt.Errorf("caddy did not start: %v\n%s", err, p.Output())
	}
	return p, nil
}

// waitListening returns once the admin endpoint answers and every HTTP
// listener of the running config accepts a connection: the admin
// endpoint answers before the HTTP servers have bound their ports.
func (p *Process) waitListening(limit time.Duration) error {
	client, base := AdminClient(p.Admin)
	deadline := time.Now().Add(limit)
	for {
		listeners, err := httpListeners(client, base)
		if err == nil {
			err = dialAll(listeners)
		}
		if err == nil {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("caddy exited: %v", err)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Load posts a Caddyfile to the admin endpoint, as `caddy reload` does
// (with force, as `caddy reload --force`: loaded even when unchanged),
// and returns Caddy's answer. A config Caddy took is running when Load
// returns: every listener of it accepts. timeout bounds the load (5s
// when zero), for a reload that waits on the old config's stop.
func (p *Process) Load(t testing.TB, caddyfile string, force bool, timeout time.Duration) (status int, body string) {
	t.Helper()
	client, base := AdminClient(p.Admin)
	ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(timeout, 5*time.Second))
	defer cancel()
	var resp *http.Response
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/load", strings.NewReader(caddyfile))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/caddyfile")
		if force {
			req.Header.Set("Cache-Control", "must-revalidate")
		}
		// A fresh connection per load: Caddy may restart its admin server
		// while it rolls back a refused config, and a POST on a kept-alive
		// connection it closed fails with EOF (Go does not retry a POST).
		req.Close = true
		resp, err = client.Do(req)
		if err == nil {
			break
		}
		// Even a fresh connection can be taken by the admin listener that
		// is closing after a refused load, and read EOF (seen once under
		// -race): no answer came, so the load is sent again. Loading the
		// same config twice changes nothing.
		if attempt == 3 || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("loading a config: %v\n%s", err, p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := p.waitListening(30 * time.Second); err != nil {
			t.Fatalf("the loaded config does not listen: %v\n%s", err, p.Output())
		}
	}
	return resp.StatusCode, string(out)
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
	return append(append(os.Environ(), p.with.Env...),
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
	cmd := exec.Command(p.with.path(t), args...)
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

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

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
