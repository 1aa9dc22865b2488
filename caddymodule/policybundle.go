package caddymodule

import (
	"cmp"
	"context"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
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
	if err := oneArg(d, &a.PolicyDir); err != nil {
		return err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		b := cmp.Or(a.PolicyBundle, new(PolicyBundle))
		a.PolicyBundle = b
		var err error
		switch d.Val() {
		case "poll":
			err = durationInto(d, &b.Poll, 0)
		case "timeout":
			err = durationInto(d, &b.Timeout, 0)
		case "verify_key":
			err = oneArg(d, &b.VerifyKey)
		case "verify_alg":
			err = oneArg(d, &b.VerifyAlg)
		case "max_bundle_bytes":
			err = sizeArg(d, &b.MaxBytes)
		case "max_bundle_uncompressed_bytes":
			err = sizeArg(d, &b.MaxUncompressedBytes)
		default:
			err = d.Errf("unrecognized policy subdirective %q", d.Val())
		}
		if err != nil {
			return err
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
