package caddymodule

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

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
		switch d.Val() {
		case "store":
			if !d.NextArg() {
				return d.ArgErr()
			}
			raw, err := parseStore(d)
			if err != nil {
				return err
			}
			a.StoreRaw = raw
		case "policy":
			if err := a.unmarshalPolicy(d); err != nil {
				return err
			}
		case "max_ttl":
			dur, err := durationArg(d, 0)
			if err != nil {
				return err
			}
			a.MaxTTL = dur
		case "decision_cache":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return d.Errf("decision_cache %q is not a number of entries (0 disables)", v)
			}
			a.DecisionCache = &n
		case "clock":
			var source string
			if !d.AllArgs(&source) {
				return d.ArgErr()
			}
			a.ClockRaw = caddyconfig.JSONModuleObject(struct{}{}, "source", source, nil)
		case "census_interval":
			dur, err := durationArg(d, minCensusInterval)
			if err != nil {
				return err
			}
			a.CensusInterval = dur
		case "exchange_limit":
			limit, err := attemptLimitArgs(d, "30 1m")
			if err != nil {
				return err
			}
			a.ExchangeLimit = limit
		case "pepper":
			if !d.AllArgs(&a.Pepper) {
				return d.ArgErr()
			}
		case "previous_pepper":
			if !d.AllArgs(&a.PreviousPepper) {
				return d.ArgErr()
			}
		case "max_staleness":
			dur, err := durationArg(d, 0)
			if err != nil {
				return err
			}
			a.MaxStaleness = dur
		case "stale_reads":
			if !d.AllArgs(&a.StaleReads) {
				return d.ArgErr()
			}
			if a.StaleReads != "allow" && a.StaleReads != "deny" {
				return d.Errf("stale_reads must be allow or deny, not %q", a.StaleReads)
			}
		case "audit_fail_open":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.AuditFailOpen = true
		case "oidc":
			if err := a.unmarshalOIDC(d); err != nil {
				return err
			}
		case "workload":
			if err := a.unmarshalWorkload(d); err != nil {
				return err
			}
		case "webhook":
			if err := a.unmarshalWebhook(d); err != nil {
				return err
			}
		case "leaks":
			if err := a.unmarshalLeaks(d); err != nil {
				return err
			}
		case "console":
			if err := a.unmarshalConsole(d); err != nil {
				return err
			}
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
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
		switch d.Val() {
		case "audience":
			if !d.AllArgs(&c.Audience) {
				return d.ArgErr()
			}
		case "principal_claim":
			if !d.AllArgs(&c.PrincipalClaim) {
				return d.ArgErr()
			}
		case "groups_claim":
			if !d.AllArgs(&c.GroupsClaim) {
				return d.ArgErr()
			}
		case "max_age":
			dur, err := durationArg(d, 0)
			if err != nil {
				return err
			}
			c.MaxAge = identity.Duration(dur)
		case "algorithms":
			if c.Algorithms = d.RemainingArgs(); len(c.Algorithms) == 0 {
				return d.ArgErr()
			}
		case "allow_domains":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			c.AllowDomains = append(c.AllowDomains, args...)
		case "allow_groups":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			c.AllowGroups = append(c.AllowGroups, args...)
		default:
			return d.Errf("unrecognized oidc subdirective %q", d.Val())
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
		switch d.Val() {
		case "audience":
			if !d.AllArgs(&c.Audience) {
				return d.ArgErr()
			}
		case "principal_claim":
			if !d.AllArgs(&c.PrincipalClaim) {
				return d.ArgErr()
			}
		case "algorithms":
			if c.Algorithms = d.RemainingArgs(); len(c.Algorithms) == 0 {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized workload subdirective %q", d.Val())
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

// parseHandler parses the tokengate directive:
//
//	tokengate [<service>] {
//		service <name>
//		header <name>
//		policy_headers <name...>
//	}
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
		switch d.Val() {
		case "service":
			if !d.AllArgs(&h.Service) {
				return d.ArgErr()
			}
		case "header":
			if !d.AllArgs(&h.Header) {
				return d.ArgErr()
			}
		case "policy_headers":
			names := d.RemainingArgs()
			if len(names) == 0 {
				return d.ArgErr()
			}
			h.PolicyHeaders = append(h.PolicyHeaders, names...)
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
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

// durationArg reads the one argument of the subdirective the dispenser is
// on as a Caddy duration (1d and the like), positive and at least atLeast.
func durationArg(d *caddyfile.Dispenser, atLeast time.Duration) (caddy.Duration, error) {
	name, v := d.Val(), ""
	if !d.AllArgs(&v) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(v)
	switch {
	case atLeast > 0 && (err != nil || dur < atLeast):
		return 0, d.Errf("%s %q is not a duration of %s or more", name, v, atLeast)
	case err != nil || dur <= 0:
		return 0, d.Errf("%s %q is not a positive duration", name, v)
	}
	return caddy.Duration(dur), nil
}

// attemptLimitArgs reads `<attempts> <window>` (an option such as
// exchange_limit); example is a valid pair for the error message.
func attemptLimitArgs(d *caddyfile.Dispenser, example string) (*AttemptLimit, error) {
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
	return &AttemptLimit{Attempts: n, Window: caddy.Duration(dur)}, nil
}
