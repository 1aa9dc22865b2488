package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"golang.org/x/mod/sumdb/note"

	"github.com/tokengate/caddy-tokengate/internal/auditlog"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// These tests take the audit log away from a running Caddy, as a full
// disk, an operator's rm or a rotation does, and check that no allowed call
// is forwarded while its line cannot be recorded.

// newEnvAuditAt loads the usual config with audit.log a symlink to
// target, made before Caddy opens it.
func newEnvAuditAt(t *testing.T, target func(dir string) string) *env {
	e := &env{t: t, dir: t.TempDir(), upstream: startUpstream(t)}
	if err := os.Symlink(target(e.dir), filepath.Join(e.dir, "audit.log")); err != nil {
		t.Fatal(err)
	}
	e.load(envOptions{})
	t.Cleanup(e.checkNothingLeaked)
	return e
}

// mountTmpfs mounts a tmpfs of that size on a new folder under dir and
// unmounts it when the test is over. It skips when mounting is not
// allowed here, except under CI=true.
func mountTmpfs(t *testing.T, dir, size string) string {
	mnt := filepath.Join(dir, "auditfs")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mounting a tmpfs for the full-disk test: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here (needs root): %v: %s", err, bytes.TrimSpace(out))
	}
	// Lazily: Caddy may still hold the audit file when this runs.
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	return mnt
}

// fill writes to a new file in dir until the file system is full, and
// returns that file's path.
func fill(t *testing.T, dir string) string {
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range [][]byte{make([]byte, 4096), {0}} {
		for {
			if _, err := f.Write(chunk); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return path
}

// auditFile reads audit.log as it is, tolerating what a full disk leaves:
// the lines that are whole, and the physical lines that are not JSON.
func (e *env) auditFile() (good []map[string]any, bad []string) {
	b, err := os.ReadFile(filepath.Join(e.dir, "audit.log"))
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			bad = append(bad, l)
			// A line written after one cut short shares its line.
			if i := strings.LastIndex(l, `{"level":`); i > 0 && json.Unmarshal([]byte(l[i:]), &m) == nil {
				good = append(good, m)
			}
			continue
		}
		good = append(good, m)
	}
	return good, bad
}

// auditIn waits for the one decision line of the call to path in any of
// files.
func (e *env) auditIn(path string, files []string) {
	e.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		n := 0
		for _, f := range files {
			for _, l := range readJSONLines(e.t, f) {
				if l["msg"] == "decision" && l["path"] == path {
					n++
				}
			}
		}
		if n == 1 {
			return
		}
		if n > 1 || time.Now().After(deadline) {
			e.t.Fatalf("%d audit lines for %s in %v, want one", n, path, files)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) decisionLine(path string) map[string]any {
	good, _ := e.auditFile()
	for _, l := range good {
		if l["msg"] == "decision" && l["path"] == path {
			return l
		}
	}
	return nil
}

// eventually calls the gateway at a new path every 100ms until the answer
// has the status wanted, and returns it with the paths of the calls it
// took.
func (e *env) eventually(t *testing.T, secret, prefix string, status int, within time.Duration) (response, []string) {
	t.Helper()
	var paths []string
	deadline := time.Now().Add(within)
	for i := 0; ; i++ {
		path := fmt.Sprintf("/billing/%s-%d", prefix, i)
		paths = append(paths, path)
		r := call(t, http.MethodGet, e.gateURL+path, bearer(secret)...)
		if r.status == status {
			return r, paths
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %d within %s; last answer %d %s", prefix, status, within, r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// expectHeld checks that calls are refused with 503 audit_unavailable and
// never reach the upstream.
func (e *env) expectHeld(secret, prefix string, n int) {
	e.t.Helper()
	for i := range n {
		path := fmt.Sprintf("/billing/%s-%d", prefix, i)
		r := call(e.t, http.MethodGet, e.gateURL+path, bearer(secret)...)
		if r.status != http.StatusServiceUnavailable || r.reason != reason.AuditUnavailable || r.header.Get("Retry-After") != "1" {
			e.t.Fatalf("%s: %d %s, want 503 audit_unavailable with Retry-After", path, r.status, r.body)
		}
		if got := e.upstream.received(path); len(got) != 0 {
			e.t.Fatalf("%s was refused but reached the upstream", path)
		}
	}
	// A refusal that is not about the audit log is answered as always.
	if r := call(e.t, http.MethodGet, e.gateURL+"/billing/"+prefix+"-no-token"); r.status != http.StatusUnauthorized || r.reason != reason.TokenMissing {
		e.t.Fatalf("a call without a token while the audit log is down: %d %s, want 401 token_missing", r.status, r.body)
	}
}

func (e *env) expectCaddyLog(substr string) {
	e.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(e.dir, "caddy.log"))
		if bytes.Contains(b, []byte(substr)) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("Caddy's log never said %q", substr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAuditFullDisk(t *testing.T) {
	t.Parallel()
	var mnt string
	e := newEnvAuditAt(t, func(dir string) string {
		mnt = mountTmpfs(t, dir, "64k")
		return filepath.Join(mnt, "audit.log")
	})
	secret, _ := e.issue(billingReader(nil))
	if r := call(t, http.MethodGet, e.gateURL+"/billing/before", bearer(secret)...); r.status != http.StatusOK {
		t.Fatalf("before the disk filled: %d %s", r.status, r.body)
	}

	filler := fill(t, mnt)
	// Lines still fit in the last page the audit file holds; then one
	// meets the full disk. Its call was forwarded already: that line is
	// the one lost in flight. Every later allowed call is held.
	r, paths := e.eventually(t, secret, "full", http.StatusServiceUnavailable, 3*time.Second)
	passed := paths[:len(paths)-1]
	for i, p := range passed {
		if e.decisionLine(p) == nil && i != len(passed)-1 {
			t.Fatalf("%s passed and has no audit line, and is not the last call before the hold", p)
		}
	}
	// At most the last passed call lost its line; when the last line fit
	// the page exactly, none did, and the next write is the one that failed.
	if r.reason != reason.AuditUnavailable {
		t.Fatalf("held call: %d %s, want reason audit_unavailable", r.status, r.body)
	}
	e.expectHeld(secret, "held", 5)
	e.expectCaddyLog("refusing allowed calls with 503 audit_unavailable")

	// Space again: the next refusal's line gets through, and from then on
	// calls pass and are recorded.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r, paths = e.eventually(t, secret, "freed", http.StatusOK, 3*time.Second)
	if len(paths) > 2 {
		t.Fatalf("%d calls refused after space was freed, want at most one", len(paths)-1)
	}
	last := paths[len(paths)-1]
	deadline := time.Now().Add(3 * time.Second)
	for e.decisionLine(last) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no audit line for %s after the disk had space again", last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if l := e.decisionLine(last); l["decision"] != "allow" || l["status"] != float64(200) {
		t.Fatalf("line of the first call passed after recovery: %v", l)
	}
	if len(paths) == 2 {
		l := e.decisionLine(paths[0])
		if l == nil || l["decision"] != "error" || fmt.Sprint(l["reasons"]) != "["+reason.AuditUnavailable+"]" || l["status"] != float64(503) {
			t.Fatalf("line of the refusal that found space again: %v", l)
		}
	}
	e.expectCaddyLog("audit lines are written again")
	// The writer kept the line it could not write and wrote it once
	// there was space: every call that passed is recorded.
	for _, p := range passed {
		if e.decisionLine(p) == nil {
			t.Fatalf("%s passed before the disk was full and has no audit line after it had space again", p)
		}
	}

	// What the full disk left: at most one line cut short, and the line
	// written after it intact behind it. The leak check after the test
	// reads strict JSON lines, so the fragment goes.
	_, bad := e.auditFile()
	if len(bad) > 1 {
		t.Fatalf("%d broken lines in the audit log, want at most one: %q", len(bad), bad)
	}
	for _, l := range bad {
		i := strings.LastIndex(l, `{"level":`)
		var m map[string]any
		if i <= 0 || json.Unmarshal([]byte(l[i:]), &m) != nil {
			t.Fatalf("broken line is not a fragment followed by a whole line: %q", l)
		}
		path := filepath.Join(e.dir, "audit.log")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, bytes.Replace(b, []byte(l[:i]), nil, 1), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAuditFileFollowed takes the audit file away as an operator and
// logrotate do, under the tokengate_audit writer: rm, a move with a new
// file made in its place (logrotate's create), copytruncate. Every call
// passes, its line is in the file at the path, and the files verify as one
// log against the signed checkpoints. A directory put in the file's place
// holds allowed calls until it goes, without a restart.
func TestAuditFileFollowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	secret, _ := e.issue(billingReader(nil))
	path := filepath.Join(e.dir, "audit.log")
	// pass makes calls that must pass, each with its line in one of files
	// (audit.log when none is named).
	pass := func(prefix string, files ...string) {
		t.Helper()
		for i := range 5 {
			p := fmt.Sprintf("/billing/%s-%d", prefix, i)
			if r := call(t, http.MethodGet, e.gateURL+p, bearer(secret)...); r.status != http.StatusOK {
				t.Fatalf("%s: %d %s", p, r.status, r.body)
			}
			if len(files) == 0 {
				e.auditFor(p)
				continue
			}
			e.auditIn(p, files)
		}
	}
	pass("before")

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	pass("after-rm")

	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	// Until the writer next looks at the file (every millisecond), lines go on into
	// the moved file: they are recorded there.
	pass("after-create", path+".1", path)
	time.Sleep(150 * time.Millisecond)
	pass("after-create-later")

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".2", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	pass("after-copytruncate")

	// Everything since the rm, in the order written, verifies as one log
	// once the next checkpoint is signed.
	key, err := auditlog.LoadOrCreateKey(auditlog.KeyPath(e.appDataDir()))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(key.Vkey)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{path + ".1", path + ".2", path}
	deadline := time.Now().Add(3 * time.Second)
	for {
		res, err := auditlog.Verify(files, []string{path + ".checkpoints"}, v)
		if err == nil {
			if res.StartSize == 0 || res.Lines < 15 {
				t.Fatalf("verified %+v: want the lines since the rm, continuing the tree of the deleted file", res)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify %v: %v", files, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A directory in the file's place: the writer cannot make a file, so
	// calls are held; the lines it could not write are written once the
	// directory goes, and calls pass again.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, passed := e.eventually(t, secret, "dir", http.StatusServiceUnavailable, 3*time.Second)
	e.expectHeld(secret, "dir-held", 3)
	e.expectCaddyLog("refusing allowed calls with 503 audit_unavailable")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, back := e.eventually(t, secret, "back", http.StatusOK, 3*time.Second)
	for _, p := range append(passed, back[len(back)-1]) {
		e.auditFor(p)
	}
	e.expectCaddyLog("audit lines are written again")
}

// TestAuditUnwritable starts with an audit log that takes no line at all
// (every write fails, as on a file system that went read-only): no call is
// ever forwarded. With audit_fail_open, the operator's explicit choice,
// calls pass anyway.
func TestAuditUnwritable(t *testing.T) {
	t.Parallel()
	e := newEnvAuditAt(t, func(string) string { return "/dev/full" })
	secret, _ := e.issue(billingReader(nil))
	e.expectHeld(secret, "unwritable", 3)
	e.expectCaddyLog("refusing allowed calls with 503 audit_unavailable")
	if n := len(e.upstream.dump()); n != 0 {
		t.Fatalf("the upstream got calls while no audit line could be written")
	}
	// The leak check needs lines to read: put a real file in place (the
	// writer keeps /dev/full).
	path := filepath.Join(e.dir, "audit.log")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"level":"info","ts":1,"logger":"tokengate.audit","msg":"token.issued","schema":2,"actor":"t","token_id":"tok_x","reason":"","outcome":"success"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAuditFailOpenOption(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"tokengate {\n audit_fail_open\n}": `"audit_fail_open":true`,
		"tokengate {\n max_ttl 1h\n}":      `{"max_ttl":3600000000000}`,
	} {
		v, err := parseGlobalOption(caddyfile.NewTestDispenser(in), nil)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := string(v.(httpcaddyfile.App).Value); !strings.Contains(got, want) {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
	if _, err := parseGlobalOption(caddyfile.NewTestDispenser("tokengate {\n audit_fail_open yes\n}"), nil); err == nil {
		t.Error("audit_fail_open takes no argument")
	}
	// What the option does to the hold: internal/node's TestAuditFailOpenHold.
}

// TestAuditTreeSurvivesReload reloads the config twice, with a changed
// option in between: the writer of the same file is kept, so its lines
// before and after verify as one log.
func TestAuditTreeSurvivesReload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	secret, _ := e.issue(billingReader(nil))
	var paths []string
	for i, o := range []envOptions{{}, {decisionCache: 5}, {}} {
		if i > 0 {
			newEnvReusing(e, o)
		}
		p := fmt.Sprintf("/billing/reload-%d", i)
		if r := call(t, http.MethodGet, e.gateURL+p, bearer(secret)...); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
		paths = append(paths, p)
	}
	for _, p := range paths {
		e.auditFor(p)
	}
	key, err := auditlog.LoadOrCreateKey(auditlog.KeyPath(e.appDataDir()))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(key.Vkey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.dir, "audit.log")
	deadline := time.Now().Add(3 * time.Second)
	for {
		res, err := auditlog.Verify([]string{path}, []string{path + ".checkpoints"}, v)
		if err == nil {
			if res.StartSize != 0 || res.Lines != int64(len(e.auditLines())) {
				t.Fatalf("verified %+v, want every one of the %d lines from the first", res, len(e.auditLines()))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify after two reloads: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
