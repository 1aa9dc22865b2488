package caddymodule

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/duration"
	"github.com/tokengate/caddy-tokengate/internal/identity"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("tokengate", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("tokengate", parseHandler)
	// Authentication runs where Caddy's own basic_auth does: after
	// rewrites, before anything that answers or proxies.
	httpcaddyfile.RegisterDirectiveOrder("tokengate", httpcaddyfile.After, "basic_auth")
}

// parseGlobalOption parses the global tokengate option, `tokengate { ... }`.
// Its syntax, and that of every block it holds, is in docs/caddyfile.md,
// which a test keeps in step with this file.
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "tokengate", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from Caddyfile tokens.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "store":
			if !d.NextArg() {
				return d.ArgErr()
			}
			a.StoreRaw, err = parseStore(d)
		case "policy":
			err = a.unmarshalPolicy(d)
		case "max_ttl":
			err = durationInto(d, &a.MaxTTL, 0)
		case "decision_cache":
			a.DecisionCache, err = entriesArg(d)
		case "clock":
			var source string
			err = oneArg(d, &source)
			a.ClockRaw = caddyconfig.JSONModuleObject(struct{}{}, "source", source, nil)
		case "census_interval":
			err = durationInto(d, &a.CensusInterval, minCensusInterval)
		case "exchange_limit":
			a.ExchangeLimit, err = attemptLimitArgs(d, "30 1m")
		case "pepper":
			err = oneArg(d, &a.Pepper)
		case "previous_pepper":
			err = oneArg(d, &a.PreviousPepper)
		case "max_staleness":
			err = durationInto(d, &a.MaxStaleness, 0)
		case "stale_reads":
			err = choiceArg(d, &a.StaleReads, "allow", "deny")
		case "audit_fail_open":
			a.AuditFailOpen, err = true, noArgs(d)
		case "oidc":
			err = a.unmarshalOIDC(d)
		case "workload":
			err = a.unmarshalWorkload(d)
		case "webhook":
			err = a.unmarshalWebhook(d)
		case "leaks":
			err = a.unmarshalLeaks(d)
		case "console":
			err = a.unmarshalConsole(d)
		default:
			err = d.Errf("unrecognized subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseStore hands the store's tokens (`bolt [<path>]`, `postgres <dsn>`,
// or those of any module in the tokengate.stores namespace, which may come
// from another repository) to that module's own Caddyfile unmarshaler; the
// dispenser is on the backend name.
func parseStore(d *caddyfile.Dispenser) (json.RawMessage, error) {
	backend := d.Val()
	if _, err := caddy.GetModule("tokengate.stores." + backend); err != nil {
		var known []string
		for _, m := range caddy.GetModules("tokengate.stores") {
			known = append(known, m.ID.Name())
		}
		return nil, d.Errf("unknown store %q (want one of: %s)", backend, strings.Join(known, ", "))
	}
	unm, err := caddyfile.UnmarshalModule(d, "tokengate.stores."+backend)
	if err != nil {
		return nil, err
	}
	return caddyconfig.JSONModuleObject(unm, "backend", backend, nil), nil
}

// unmarshalOIDC reads `oidc <issuer> { ... }`; the dispenser is on "oidc".
func (a *App) unmarshalOIDC(d *caddyfile.Dispenser) error {
	if a.OIDC != nil {
		return d.Err("oidc is set twice: one identity provider signs people in")
	}
	c := &identity.PersonConfig{}
	if !d.AllArgs(&c.Issuer) {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "audience":
			err = oneArg(d, &c.Audience)
		case "principal_claim":
			err = oneArg(d, &c.PrincipalClaim)
		case "groups_claim":
			err = oneArg(d, &c.GroupsClaim)
		case "max_age":
			err = durationInto(d, &c.MaxAge, 0)
		case "algorithms":
			c.Algorithms, err = argsOf(d)
		case "allow_domains":
			err = appendArgs(d, &c.AllowDomains)
		case "allow_groups":
			err = appendArgs(d, &c.AllowGroups)
		default:
			err = d.Errf("unrecognized oidc subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if c.Audience == "" {
		return d.Errf("oidc %s needs an audience (the client id its ID tokens are issued to)", c.Issuer)
	}
	a.OIDC = c
	return nil
}

// unmarshalWorkload reads `workload <name> <issuer> { ... }`; the
// dispenser is on "workload".
func (a *App) unmarshalWorkload(d *caddyfile.Dispenser) error {
	var c identity.WorkloadConfig
	if !d.AllArgs(&c.Name, &c.Issuer) {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "audience":
			err = oneArg(d, &c.Audience)
		case "principal_claim":
			err = oneArg(d, &c.PrincipalClaim)
		case "algorithms":
			c.Algorithms, err = argsOf(d)
		default:
			err = d.Errf("unrecognized workload subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if c.Audience == "" {
		return d.Errf("workload %s needs an audience (what its tokens' aud must say)", c.Name)
	}
	for _, w := range a.Workloads {
		if w.Name == c.Name {
			return d.Errf("workload %s is defined twice", c.Name)
		}
	}
	a.Workloads = append(a.Workloads, c)
	return nil
}

// parseHandler parses the tokengate directive, `tokengate [<service>] {
// ... }`.
func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Service = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "service":
			err = oneArg(d, &h.Service)
		case "header":
			err = oneArg(d, &h.Header)
		case "policy_headers":
			err = appendArgs(d, &h.PolicyHeaders)
		default:
			err = d.Errf("unrecognized subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if h.Service == "" {
		return d.Err("tokengate needs a service: `tokengate <service>` or `service <name>` in its block")
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)

// The helpers below read the arguments of the subdirective the dispenser
// is on, so that each option is one line of its parser's switch and every
// option of a kind is refused with the same words.

// noArgs refuses arguments (a flag, or a block that takes none).
func noArgs(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// oneArg reads exactly one argument into v.
func oneArg(d *caddyfile.Dispenser, v *string) error {
	if !d.AllArgs(v) {
		return d.ArgErr()
	}
	return nil
}

// argsOf returns the arguments, at least one.
func argsOf(d *caddyfile.Dispenser) ([]string, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.ArgErr()
	}
	return args, nil
}

// appendArgs adds the arguments, at least one, to list: such an option
// may be given on several lines.
func appendArgs(d *caddyfile.Dispenser, list *[]string) error {
	args, err := argsOf(d)
	*list = append(*list, args...)
	return err
}

// choiceArg reads one argument that must be one of choices.
func choiceArg(d *caddyfile.Dispenser, v *string, choices ...string) error {
	name := d.Val()
	if err := oneArg(d, v); err != nil {
		return err
	}
	if !slices.Contains(choices, *v) {
		return d.Errf("%s must be %s, not %q", name, strings.Join(choices, " or "), *v)
	}
	return nil
}

// parsedArg reads one argument through parse, whose error is the message.
func parsedArg[T any](d *caddyfile.Dispenser, parse func(string) (T, error)) (T, error) {
	var v string
	if err := oneArg(d, &v); err != nil {
		return *new(T), err
	}
	x, err := parse(v)
	if err != nil {
		return *new(T), d.Err(err.Error())
	}
	return x, nil
}

// entriesArg reads a number of cache entries, 0 meaning none.
func entriesArg(d *caddyfile.Dispenser) (*int, error) {
	name, v := d.Val(), ""
	if err := oneArg(d, &v); err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return nil, d.Errf("%s %q is not a number of entries (0 disables)", name, v)
	}
	return &n, nil
}

// durationInto reads one argument as a Caddy duration (1d and the like),
// positive and at least atLeast, into dst.
func durationInto[D ~int64](d *caddyfile.Dispenser, dst *D, atLeast time.Duration) error {
	name, v := d.Val(), ""
	if err := oneArg(d, &v); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(v)
	switch {
	case atLeast > 0 && (err != nil || dur < atLeast):
		return d.Errf("%s %q is not a duration of %s or more", name, v, atLeast)
	case err != nil || dur <= 0:
		return d.Errf("%s %q is not a positive duration", name, v)
	}
	*dst = D(dur)
	return nil
}

// sizeArg reads one argument as a positive number of bytes (16MiB and the
// like) into dst.
func sizeArg(d *caddyfile.Dispenser, dst *int64) error {
	name, v := d.Val(), ""
	if err := oneArg(d, &v); err != nil {
		return err
	}
	n, err := humanize.ParseBytes(v)
	if err != nil || n == 0 || n > math.MaxInt64 {
		return d.Errf("%s %q is not a size such as 16MiB", name, v)
	}
	*dst = int64(n)
	return nil
}

// attemptLimitArgs reads `<attempts> <window>` (an option such as
// exchange_limit); example is a valid pair for the error message.
func attemptLimitArgs(d *caddyfile.Dispenser, example string) (*addrlimit.AttemptLimit, error) {
	name := d.Val()
	var attempts, window string
	if !d.AllArgs(&attempts, &window) {
		return nil, d.ArgErr()
	}
	n, err := strconv.Atoi(attempts)
	dur, derr := caddy.ParseDuration(window)
	if err != nil || n < 1 || derr != nil || dur <= 0 {
		return nil, d.Errf("%s takes a number of attempts and a window, such as %s", name, example)
	}
	return &addrlimit.AttemptLimit{Attempts: n, Window: duration.Duration(dur)}, nil
}
