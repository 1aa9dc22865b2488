package caddymodule

import (
	"cmp"
	"context"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/policy"
)

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
		b := cmp.Or(a.PolicyBundle, new(policy.BundleConfig))
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

// pollBundle keeps the bundle current until ctx is done, logging and
// counting each revision put in force and each refusal.
func (a *App) pollBundle(ctx context.Context) {
	a.engine.PollBundle(ctx, a.bundle, a.PolicyBundle.PollEvery(a.PolicyDir), func(rev string, err error) {
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
