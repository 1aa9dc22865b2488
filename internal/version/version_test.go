package version

import (
	"runtime/debug"
	"testing"
)

// The version is the one the Go toolchain recorded for this module, in
// each way a binary is built.
func TestVersionIn(t *testing.T) {
	for _, c := range []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"go build in a tagged checkout", debug.BuildInfo{Main: debug.Module{Path: modulePath, Version: "v0.2.0"}}, "v0.2.0"},
		{"go build -buildvcs=false", debug.BuildInfo{Main: debug.Module{Path: modulePath, Version: "(devel)"}}, "(devel)"},
		{"xcaddy --with module@v0.2.0=.", debug.BuildInfo{Main: debug.Module{Path: "caddy", Version: "(devel)"}, Deps: []*debug.Module{
			{Path: "github.com/caddyserver/caddy/v2", Version: "v2.11.9"},
			{Path: modulePath, Version: "v0.2.0", Replace: &debug.Module{Path: "/src/caddy-tokengate", Version: "(devel)"}},
		}}, "v0.2.0"},
		{"xcaddy --with module=../fork@v0.2.1", debug.BuildInfo{Main: debug.Module{Path: "caddy"}, Deps: []*debug.Module{
			{Path: modulePath, Version: "v0.2.0", Replace: &debug.Module{Path: "example.com/fork", Version: "v0.2.1"}},
		}}, "v0.2.1"},
		{"published module", debug.BuildInfo{Main: debug.Module{Path: "caddy"}, Deps: []*debug.Module{
			{Path: modulePath, Version: "v0.3.0", Sum: "h1:x"},
		}}, "v0.3.0"},
	} {
		if got := in(&c.bi); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
