// Package tokengate is the import path xcaddy builds with:
//
//	xcaddy build --with github.com/tokengate/caddy-tokengate
//
// It only registers the Caddy modules, which live in caddymodule, and the
// `caddy tokengate` command, which lives in cli.
package tokengate

import (
	_ "github.com/tokengate/caddy-tokengate/caddymodule"
	_ "github.com/tokengate/caddy-tokengate/cli"
)
