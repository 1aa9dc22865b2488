package main

import (
	"cmp"
	"debug/buildinfo"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
)

// TestCaddyVersionNamesTokengate: `caddy version` and `caddy --version`
// of the built binary name tokengate's version, the one Go recorded in the
// binary (and tokengate_build_info reports), then Caddy's own version.
func TestCaddyVersionNamesTokengate(t *testing.T) {
	t.Parallel()
	bin := caddyproc.Binary(t)
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var caddyVersion string
	for _, d := range bi.Deps {
		if d.Path == "github.com/caddyserver/caddy/v2" {
			caddyVersion = d.Version
		}
	}
	if caddyVersion == "" {
		t.Fatal("the binary's build info lists no Caddy module")
	}
	want := "tokengate " + cmp.Or(bi.Main.Version, "(devel)") + ", Caddy " + caddyVersion + " "
	p := &caddyproc.Process{Dir: t.TempDir()}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		stdout, stderr, err := p.CLI(t, nil, args...)
		if err != nil || !strings.HasPrefix(stdout, want) {
			t.Errorf("caddy %s: %v, %q %s; want it to start with %q", args[0], err, stdout, stderr, want)
		}
	}
}
