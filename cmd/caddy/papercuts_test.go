package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
)

// runCaddy runs the built binary with HOME and the XDG folders in a
// temporary folder and without TOKENGATE_API, and returns stdout, stderr
// and the error.
func runCaddy(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(caddyproc.Binary(t), args...)
	cmd.Dir = home
	cmd.Env = append(os.Environ(), "HOME="+home, "TOKENGATE_API=", "TOKENGATE_TOKEN=",
		"XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"), "XDG_STATE_HOME="+filepath.Join(home, "state"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// subcommands lists the subcommands a help page names under "Available
// Commands:", except cobra's own help and completion.
func subcommands(help string) []string {
	var names []string
	_, rest, _ := strings.Cut(help, "Available Commands:\n")
	for line := range strings.Lines(rest) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			break
		}
		if fields[0] != "help" && fields[0] != "completion" {
			names = append(names, fields[0])
		}
	}
	return names
}

// Every help page of caddy tokengate points at tokengate's documentation,
// not at caddyserver.com (which Caddy's root command adds to every page
// and which does not document tokengate), and shows examples of the
// command it describes.
func TestHelpPagesAreTokengates(t *testing.T) {
	t.Parallel()
	stdout, stderr, err := runCaddy(t, "tokengate", "--help")
	if err != nil {
		t.Fatalf("caddy tokengate --help: %v\n%s", err, stderr)
	}
	names := subcommands(stdout)
	for _, want := range []string{"approve", "deny", "issue", "list", "policy-test"} {
		if !slices.Contains(names, want) {
			t.Fatalf("caddy tokengate --help does not list %s:\n%s", want, stdout)
		}
	}
	pages := map[string]string{"tokengate": stdout}
	for _, name := range names {
		out, stderr, err := runCaddy(t, "tokengate", name, "--help")
		if err != nil {
			t.Fatalf("caddy tokengate %s --help: %v\n%s", name, err, stderr)
		}
		pages[name] = out
	}
	for name, page := range pages {
		if strings.Contains(page, "caddyserver.com") || !strings.Contains(page, "https://github.com/tokengate/caddy-tokengate#readme") {
			t.Errorf("help of %s does not point at tokengate's documentation:\n%s", name, page)
		}
		_, examples, ok := strings.Cut(page, "Examples:\n")
		cmdLine := "caddy tokengate "
		if name != "tokengate" {
			cmdLine += name
		}
		if !ok || !strings.Contains(examples, cmdLine) {
			t.Errorf("help of %s has no example running %q:\n%s", name, cmdLine, page)
		}
	}
	if !strings.Contains(pages["tokengate"], "Denies someone else's token request") || strings.Contains(pages["tokengate"], "Denys") {
		t.Errorf("deny's summary:\n%s", pages["tokengate"])
	}
}

// The two-person flow exists on the management API only. Run without --api
// against a live admin endpoint, its commands say so instead of printing
// the admin endpoint's "route_unknown"; a local issue beyond the local
// operator's bounds says what the bounds are.
func TestLocalCommandsExplainWhatTheyCannotDo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	up := startUpstream(t)
	p, _ := startGateway(t, dir, up.Listener.Addr().String(), nil)
	local := []string{"--address", p.Admin}
	noAPI := []string{"TOKENGATE_API=", "TOKENGATE_TOKEN="}

	for _, args := range [][]string{
		{"approve", "req_0000"},
		{"deny", "req_0000", "--reason", "no"},
		{"claim", "req_0000"},
		{"request", "--owner", "alice", "--purpose", "p", "--scope", "api:read", "--service", "api"},
		{"list", "--requests"},
	} {
		_, stderr, err := p.CLI(t, noAPI, append(append([]string{"tokengate"}, args...), local...)...)
		if exitCode(err) != 1 || !strings.Contains(stderr, "this command needs the management API (--api or TOKENGATE_API)") || strings.Contains(stderr, "route_unknown") {
			t.Errorf("caddy tokengate %v without --api: %v\n%s", args, err, stderr)
		}
	}

	_, stderr, err := p.CLI(t, noAPI, append([]string{"tokengate", "issue", "--owner", "alice", "--purpose", "p",
		"--scope", "api:write", "--service", "api", "--ttl", "30m"}, local...)...)
	if exitCode(err) != 1 || !strings.Contains(stderr, "local_operator_bounds") || !strings.Contains(stderr, `read-only tokens (every scope ending in ":read") living at most 1h`) {
		t.Errorf("issue of a write token by the local operator: %v\n%s", err, stderr)
	}
}

// list's USES column counts only what is counted: calls of use-limited
// tokens, as used/max; an unlimited token shows "-", not a 0 that reads
// as "never used" while the token is in daily use.
func TestListShowsUsesOnlyWhereCounted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	up := startUpstream(t)
	p, port := startGateway(t, dir, up.Listener.Addr().String(), nil)
	local := []string{"--address", p.Admin}
	issue := func(extra ...string) (secret, id string) {
		t.Helper()
		stdout, stderr, err := p.CLI(t, nil, append(append([]string{"tokengate", "issue", "--owner", "alice", "--purpose", "uses",
			"--scope", "api:read", "--service", "api", "--ttl", "30m", "--json"}, extra...), local...)...)
		var issued struct {
			Secret string
			Token  struct{ ID string }
		}
		if err != nil || json.Unmarshal([]byte(stdout), &issued) != nil {
			t.Fatalf("issue %v: %v\n%s", extra, err, stderr)
		}
		return issued.Secret, issued.Token.ID
	}
	unlimited, unlimitedID := issue()
	limited, limitedID := issue("--max-uses", "3")
	for _, secret := range []string{unlimited, unlimited, limited} {
		if status, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/x", port), secret); status != 200 {
			t.Fatalf("call: %d %s", status, body)
		}
	}

	stdout, stderr, err := p.CLI(t, nil, append([]string{"tokengate", "list"}, local...)...)
	if err != nil {
		t.Fatalf("list: %v\n%s", err, stderr)
	}
	columns := regexp.MustCompile(`\s{2,}`)
	header, rows, _ := strings.Cut(stdout, "\n")
	uses := slices.Index(columns.Split(header, -1), "USES")
	if uses < 0 {
		t.Fatalf("list has no USES column:\n%s", stdout)
	}
	want := map[string]string{unlimitedID: "-", limitedID: "1/3"}
	for row := range strings.Lines(rows) {
		cells := columns.Split(strings.TrimSpace(row), -1)
		if w, ok := want[cells[0]]; ok {
			if cells[uses] != w {
				t.Errorf("USES of %s is %q, want %q:\n%s", cells[0], cells[uses], w, stdout)
			}
			delete(want, cells[0])
		}
	}
	if len(want) > 0 {
		t.Errorf("list does not show %v:\n%s", want, stdout)
	}
}
