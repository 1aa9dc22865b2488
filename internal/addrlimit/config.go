package addrlimit

import (
	"cmp"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/duration"
)

// AttemptLimit is how many attempts one client address may make in each
// window.
//
// In a Caddyfile: `exchange_limit <attempts> <window>` (docs/caddyfile.md).
type AttemptLimit struct {
	Attempts int               `json:"attempts,omitempty"`
	Window   duration.Duration `json:"window,omitempty"`
}

// Or returns the attempts and window l sets, each replaced by the given
// default when unset; l may be nil (nothing configured).
func (l *AttemptLimit) Or(attempts int, window time.Duration) (int, time.Duration) {
	if l == nil {
		return attempts, window
	}
	return cmp.Or(l.Attempts, attempts), cmp.Or(time.Duration(l.Window), window)
}
