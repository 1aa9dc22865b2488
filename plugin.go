// Package tokengate is the import path xcaddy builds with:
//
//	xcaddy build --with github.com/tokengate/caddy-tokengate
//
// It registers the Caddy modules, which live in caddymodule, and the
// `caddy tokengate` command, which lives in cli, and names tokengate's
// version in `caddy version`.
package tokengate

import (
	"runtime/debug"
	"strings"

	"github.com/caddyserver/caddy/v2"

	_ "github.com/tokengate/caddy-tokengate/caddymodule"
	_ "github.com/tokengate/caddy-tokengate/cli"
	"github.com/tokengate/caddy-tokengate/internal/version"
)

// Here rather than in a main package, so that a binary xcaddy generates
// says it too, not only cmd/caddy.
func init() {
	if _, ok := debug.ReadBuildInfo(); ok {
		caddy.CustomVersion = versionText(caddy.CustomVersion, version.Module())
	}
}

// versionText is what Caddy is given as CustomVersion so that `caddy
// version` (and `caddy --version`, `caddy environ`) names tokengate's
// version too: Caddy prints CustomVersion, then its own version. That is
// the only hook Caddy offers for this; its short version, which its
// metrics, tracing and ACME user agent use, stays Caddy's own. A
// packager's CustomVersion (-ldflags -X) stays in front.
//
// It is set only when the binary has build info: without it, Caddy would
// show CustomVersion alone, as its short version too.
func versionText(packager, tokengate string) string {
	return strings.TrimSpace(packager + " tokengate " + tokengate + ", Caddy")
}
