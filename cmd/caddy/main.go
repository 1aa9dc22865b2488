// Command caddy is Caddy with its standard modules plus tokengate.
package main

import (
	"runtime/debug"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/tokengate/caddy-tokengate"
	"github.com/tokengate/caddy-tokengate/caddymodule"
)

func main() {
	if _, ok := debug.ReadBuildInfo(); ok {
		caddy.CustomVersion = versionText(caddy.CustomVersion, caddymodule.Version())
	}
	caddycmd.Main()
}

// versionText is what Caddy is given as CustomVersion so that `caddy
// version` (and `caddy --version`, `caddy environ`) names tokengate's
// version too: Caddy prints CustomVersion, then its own version. That is
// the only hook Caddy offers a binary for this; its short version, which
// its metrics, tracing and ACME user agent use, stays Caddy's own. A
// packager's CustomVersion (-ldflags -X) stays in front.
//
// It is set only when the binary has build info: without it, Caddy would
// show CustomVersion alone, as its short version too.
func versionText(packager, tokengate string) string {
	return strings.TrimSpace(packager + " tokengate " + tokengate + ", Caddy")
}
