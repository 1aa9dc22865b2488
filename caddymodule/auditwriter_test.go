package caddymodule

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"fmt"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"golang.org/x/mod/sumdb/note"

	"github.com/tokengate/caddy-tokengate/internal/auditlog"
)

func TestAuditWriterCaddyfile(t *testing.T) {
	t.Parallel()
	adapt := func(block string) (string, error) {
		cfg := "{\n\tlog audit {\n\t\tinclude tokengate.audit\n\t\toutput tokengate_audit /var/log/audit.log " + block + "\n\t}\n}\n"
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
		return string(out), err
	}
	out, err := adapt(`{
			signing_key {env.TOKENGATE_AUDIT_KEY}
			checkpoint_every 250ms
			roll_size 64KiB
			roll_keep 3
			roll_keep_for 48h
			roll_local_time
		}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"output":"tokengate_audit"`, `"filename":"/var/log/audit.log"`,
		`"signing_key":"{env.TOKENGATE_AUDIT_KEY}"`, `"checkpoint_every":250000000`, `"roll_size":65536`,
		`"roll_keep":3`, `"roll_keep_days":2`, `"roll_local_time":true`} {
		if !strings.Contains(out, want) {
			t.Errorf("adapted config lacks %s: %s", want, out)
		}
	}
	if out, err := adapt("{\n\t\t\troll_disabled\n\t\t}"); err != nil || !strings.Contains(out, `"roll":false`) {
		t.Errorf("roll_disabled: %v %s", err, out)
	}
	for _, bad := range []string{
		"{\n\t\t\troll_gzip\n\t\t}",
		"{\n\t\t\troll_disabled now\n\t\t}",
		"{\n\t\t\troll_size huge\n\t\t}",
		"{\n\t\t\tcheckpoint_every 0s\n\t\t}",
		"{\n\t\t\tsigning_key\n\t\t}",
		"{\n\t\t\troll_keep many\n\t\t}",
	} {
		if _, err := adapt(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

// openFilesUnder lists the files under dir the env's Caddy holds open (a
// deleted one with " (deleted)" after its name).
func (e *env) openFilesUnder(t *testing.T, dir string) []string {
	t.Helper()
	fdDir := "/proc/self/fd"
	if e.proc != nil {
		fdDir = fmt.Sprintf("/proc/%d/fd", e.proc.Pid())
	}
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		t.Skipf("no %s to list open files: %v", fdDir, err)
	}
	var out []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			out = append(out, target)
		}
	}
	return out
}

// TestAuditWriterClosedWithItsConfig loads a config writing one audit
// file, then one writing another: the first file is closed as soon as its
// config is unloaded, its lines covered by a checkpoint (a writer left
// open kept signing checkpoints into the folders of finished tests).
func TestAuditWriterClosedWithItsConfig(t *testing.T) {
	t.Parallel()
	first := newEnv(t, envOptions{})
	secret, _ := first.issue(billingReader(nil))
	if r := call(t, http.MethodGet, first.gateURL+"/billing/first", bearer(secret)...); r.status != http.StatusOK {
		t.Fatalf("call under the first config: %d %s", r.status, r.body)
	}
	first.auditFor("/billing/first")
	path := filepath.Join(first.dir, "audit.log")
	isOpen := func() bool { return slices.Contains(first.openFilesUnder(t, first.dir), path) }
	if !isOpen() {
		t.Fatalf("the audit file is not open under its config: %v", first.openFilesUnder(t, first.dir))
	}

	// The second config goes to the first's Caddy, replacing it.
	second := &env{t: t, dir: t.TempDir(), upstream: first.upstream, proc: first.proc}
	second.setPorts(first.ports)
	second.load(envOptions{})
	if isOpen() {
		t.Fatalf("the first config's audit file is still open after it was unloaded: %v", first.openFilesUnder(t, first.dir))
	}
	key, err := auditlog.LoadOrCreateKey(auditlog.KeyPath(first.appDataDir()))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(key.Vkey)
	if err != nil {
		t.Fatal(err)
	}
	// Every line of the closed file is covered by a checkpoint.
	if _, err := auditlog.Verify([]string{path}, []string{path + ".checkpoints"}, v); err != nil {
		t.Fatalf("the closed file does not verify: %v", err)
	}
}
