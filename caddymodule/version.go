package caddymodule

import "github.com/tokengate/caddy-tokengate/internal/version"

// Version is tokengate's version as the Go toolchain recorded it in the
// running binary: the one tokengate_build_info reports, and cmd/caddy
// puts in `caddy version`.
func Version() string { return version.Module() }
