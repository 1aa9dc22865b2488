package caddymodule

import (
	"cmp"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/caddy-tokengate/internal/policy"
)

// unmarshalPolicy reads `policy <folder|bundle file|bundle URL> { ... }`;
// the dispenser is on "policy".
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
