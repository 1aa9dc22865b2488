// Command caddy is Caddy with its standard modules plus tokengate (which
// also puts its version in front of Caddy's in `caddy version`).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/tokengate/caddy-tokengate"
)

func main() {
	caddycmd.Main()
}
