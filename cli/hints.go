package cli

import (
	"errors"
	"fmt"

	"github.com/tokengate/caddy-tokengate/api"
)

// localOperatorBounds says what the shipped admin.rego lets the local
// operator do; a refusal carries only the reason code, and the bounds
// live in the policy, where an operator may have changed them.
const localOperatorBounds = `the local operator (Caddy's admin endpoint, no --api) may issue and rotate only read-only tokens (every scope ending in ":read") living at most 1h under the shipped policies/admin.rego (rule local_operator_bounds, jit_max_seconds); for more, ask through the management API: caddy tokengate request --api URL ..., which another person approves`

// withHint adds to a refusal what the person at the terminal can do
// about it, where the reason code alone does not say.
func withHint(err error) error {
	var refusal *api.Error
	if errors.As(err, &refusal) && refusal.Reason == "local_operator_bounds" {
		return fmt.Errorf("%w\n%s", err, localOperatorBounds)
	}
	return err
}
