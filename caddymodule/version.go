package caddymodule

// Version is tokengate's version as the Go toolchain recorded it in the
// running binary (see moduleVersion): the one tokengate_build_info
// reports, and cmd/caddy puts in `caddy version`.
func Version() string { return moduleVersion() }
