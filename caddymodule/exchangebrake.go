package caddymodule

import (
	"time"

	"github.com/caddyserver/caddy/v2"
)

// The token exchange takes no credential, so nothing but its client's
// address limits how often it is tried: each attempt verifies a JWT,
// perhaps fetches keys, and writes an audit line. The brake allows
// DefaultExchangeAttempts per address and DefaultExchangeWindow unless
// the app's exchange_limit says otherwise.
const (
	DefaultExchangeAttempts = 30
	DefaultExchangeWindow   = time.Minute
)

// AttemptLimit is how many attempts one client address may make in each
// window.
//
// Caddyfile, in the tokengate global option:
//
//	exchange_limit <attempts> <window>
type AttemptLimit struct {
	Attempts int            `json:"attempts,omitempty"`
	Window   caddy.Duration `json:"window,omitempty"`
}
