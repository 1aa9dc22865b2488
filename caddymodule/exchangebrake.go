package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/reason"
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

// brakeExchange counts r's attempt against its client address. Over the
// limit it answers 429 rate_limited with Retry-After (OAuth's shape, as
// the exchange answers) and returns false; only the first refusal of an
// address in a window writes its own audit line, the others are counted
// into one summary line when the window ends.
func (h *AdminHandler) brakeExchange(ctx context.Context, w http.ResponseWriter, r *http.Request) bool {
	a := h.auth.app
	clientIP, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	addr := addrlimit.Key(clientIP)
	v, ended := a.exchangeBrake.Attempt(addr)
	a.writeBrakeSummaries(ended)
	if v.Allowed {
		return true
	}
	const desc = "too many exchange attempts from this address; retry after the time Retry-After says"
	if v.Audit {
		a.manage.ExchangeThrottled(ctx, addr, desc, 1)
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(v.RetryAfter/time.Second)))
	writeOAuthError(w, &oauthError{status: http.StatusTooManyRequests, code: "invalid_request", reason: reason.RateLimited, desc: desc})
	return false
}

// writeBrakeSummaries writes one line per address for the refusals the
// brake counted without a line of their own.
func (a *App) writeBrakeSummaries(done []addrlimit.Summary) {
	for _, s := range done {
		a.manage.ExchangeThrottled(context.Background(), s.Addr,
			fmt.Sprintf("%d more exchange attempts refused between %s and %s", s.Refused,
				s.From.UTC().Format(time.RFC3339), s.To.UTC().Format(time.RFC3339)), s.Refused)
	}
}
