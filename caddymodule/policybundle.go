package caddymodule

import (
	"context"
	"math"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/policy"
)

// PolicyBundle configures a policy given as an OPA bundle: `policy` names
// a bundle file (.tar.gz, as `opa build` writes it) or the http(s) URL of
// a bundle service.
type PolicyBundle struct {
	// How often the bundle is fetched again. Default 60s for a URL (with
	// If-None-Match, so an unchanged bundle costs a 304), 10s for a file.
	Poll caddy.Duration `json:"poll,omitempty"`
	// File holding the PEM public key (or certificate) that signed
	// bundles are verified with. With it, unsigned bundles are refused;
	// without it, signed ones are.
	VerifyKey string `json:"verify_key,omitempty"`
	// Signing algorithm of the key. Default RS256.
	VerifyAlg string `json:"verify_alg,omitempty"`
	// Bound on one download, first byte to last. Default 30s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Bounds on the bundle in bytes: as read (gzipped), default 16 MiB,
	// and inflated, default 64 MiB. Both are enforced while the bundle is
	// read, before it is unpacked and before its signature is checked, so
	// that a gzip bomb cannot take the gateway's memory.
	MaxBytes             int64 `json:"max_bundle_bytes,omitempty"`
	MaxUncompressedBytes int64 `json:"max_bundle_uncompressed_bytes,omitempty"`
}

// unmarshalPolicy parses the policy option; the dispenser is on its name:
//
//	policy <folder|bundle.tar.gz|https://bundle-service/path> {
//		poll <duration>
//		verify_key <pem file>
//		verify_alg <RS256|PS256|ES256|...>
//		timeout <duration>
//		max_bundle_bytes <size>                # default 16MiB
//		max_bundle_uncompressed_bytes <size>   # default 64MiB
//	}
func (a *App) unmarshalPolicy(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	a.PolicyDir = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if a.PolicyBundle == nil {
			a.PolicyBundle = new(PolicyBundle)
		}
		name, v := d.Val(), ""
		if !d.AllArgs(&v) {
			return d.ArgErr()
		}
		switch name {
		case "poll", "timeout":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("%s %q is not a positive duration", name, v)
			}
			if name == "poll" {
				a.PolicyBundle.Poll = caddy.Duration(dur)
			} else {
				a.PolicyBundle.Timeout = caddy.Duration(dur)
			}
		case "verify_key":
			a.PolicyBundle.VerifyKey = v
		case "verify_alg":
			a.PolicyBundle.VerifyAlg = v
		case "max_bundle_bytes", "max_bundle_uncompressed_bytes":
			n, err := humanize.ParseBytes(v)
			if err != nil || n == 0 || n > math.MaxInt64 {
				return d.Errf("%s %q is not a size such as 16MiB", name, v)
			}
			if name == "max_bundle_bytes" {
				a.PolicyBundle.MaxBytes = int64(n)
			} else {
				a.PolicyBundle.MaxUncompressedBytes = int64(n)
			}
		default:
			return d.Errf("unrecognized policy subdirective %q", name)
		}
	}
	return nil
}

// policyBundle returns the bundle `policy` names, or nil when it names a
// folder (or nothing: the built-in policies).
func (a *App) policyBundle() (*policy.Bundle, error) {
	var conf *policy.BundleConfig
	if c := a.PolicyBundle; c != nil {
		conf = &policy.BundleConfig{Poll: time.Duration(c.Poll), VerifyKeyFile: c.VerifyKey, VerifyAlg: c.VerifyAlg,
			Timeout: time.Duration(c.Timeout), MaxBytes: c.MaxBytes, MaxUncompressedBytes: c.MaxUncompressedBytes}
	}
	return policy.OpenBundle(a.PolicyDir, conf, metrics.BundleFetched)
}

// pollBundle keeps the bundle current until ctx is done, logging and
// counting each revision put in force and each refusal.
func (a *App) pollBundle(ctx context.Context) {
	var poll time.Duration
	if a.PolicyBundle != nil {
		poll = time.Duration(a.PolicyBundle.Poll)
	}
	a.engine.PollBundle(ctx, a.bundle, policy.BundlePoll(a.PolicyDir, poll), func(rev string, err error) {
		if err != nil {
			a.logger.Error("policy bundle refused; previous policy stays in force",
				zap.Stringer("policy", a.bundle), zap.String("policy_rev", a.engine.Revision()), zap.Error(err))
			if !policy.IsFetchFailure(err) {
				metrics.PolicyReloaded(false)
			}
			return
		}
		metrics.PolicyReloaded(true)
		a.logger.Info("policy reloaded", zap.Stringer("policy", a.bundle), zap.String("policy_rev", rev))
	})
}
