// Package pgbouncer runs a PgBouncer in transaction mode in front of the
// test database, for tests that check what works through it. It skips
// the test when pgbouncer is not installed (Debian package pgbouncer),
// except under CI=true.
package pgbouncer

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Start runs pgbouncer on a free port of 127.0.0.1 in front of the
// database at target (a postgres:// URL), in pool_mode transaction with
// poolSize server connections per database and user, letting users log in
// without a password (the test database trusts them). It returns target
// with its host replaced by PgBouncer's. It stops when the test ends.
func Start(tb testing.TB, target *url.URL, users []string, poolSize int) *url.URL {
	tb.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal("pgbouncer is not installed (Debian package pgbouncer)")
		}
		tb.Skip("pgbouncer is not installed (Debian package pgbouncer)")
	}
	dir, err := os.MkdirTemp("", "tokengate-pgbouncer-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	// pgbouncer refuses to run as root; as nobody it must read the files.
	if err := os.Chmod(dir, 0o777); err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var auth []byte
	for _, u := range users {
		auth = fmt.Appendf(auth, "%q \"\"\n", u)
	}
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 2000
ignore_startup_parameters = extra_float_digits,search_path,options
logfile = %s
`, target.Hostname(), target.Port(), port, filepath.Join(dir, "users.txt"), poolSize, filepath.Join(dir, "pgbouncer.log"))
	for name, content := range map[string][]byte{"users.txt": auth, "pgbouncer.ini": []byte(ini)} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for start := time.Now(); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 10*time.Second {
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			tb.Fatalf("pgbouncer did not listen on %s: %v\n%s", addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	u := *target
	u.Host = addr
	return &u
}
