// Package version reads tokengate's version from the build information
// the Go toolchain records in every binary.
package version

import (
	"cmp"
	"runtime/debug"
)

// modulePath is this Go module, whose version is reported.
const modulePath = "github.com/tokengate/caddy-tokengate"

// Module is tokengate's version as the Go toolchain recorded it: the
// version xcaddy's --with asked for (a replaced module keeps the version
// it was required at), or, for `go build ./cmd/caddy` in a git checkout,
// the tag or pseudo-version Go derives from the commit. "(devel)" when
// neither is known (a build with -buildvcs=false).
func Module() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return in(bi)
}

func in(bi *debug.BuildInfo) string {
	if bi.Main.Path == modulePath {
		return cmp.Or(bi.Main.Version, "(devel)")
	}
	for _, dep := range bi.Deps {
		if dep.Path == modulePath {
			// A folder replacement (xcaddy's module@v0.2.0=./src) is
			// recorded as "(devel)": the version asked for is the one.
			if dep.Replace != nil && dep.Replace.Version != "" && dep.Replace.Version != "(devel)" {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return "(devel)"
}
