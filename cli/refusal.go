package cli

import (
	"errors"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// refusalOf reads err as a refusal of the API, as the one refusal type
// the gateway, the management API and the CLI share: the code, its class
// and the detail. false when err is no refusal: the endpoint could not be
// reached, or what answered was no tokengate API (a proxy's error page has
// no code).
func refusalOf(err error) (*reason.Refusal, bool) {
	var e *api.Error
	if !errors.As(err, &e) || e.Reason == "" {
		return nil, false
	}
	return &reason.Refusal{Code: e.Reason, Class: classOf(e), Detail: e.Message}, true
}

// classOf is the class of a refused code: the declared one, or, for a
// code this CLI does not know (a policy's own, a newer gateway's), the one
// the status says.
func classOf(e *api.Error) reason.Class {
	if reason.Declared(e.Reason) {
		return reason.DeclaredClass(e.Reason)
	}
	if c, ok := reason.ClassOfStatus(e.Status); ok {
		return c
	}
	return reason.Forbidden
}

// refused is a refusal as the person at the terminal reads it: the code
// and the detail, escaped (both come from the server, and the detail from
// whoever typed it), and what they can do about it where the code alone
// does not say.
type refused struct {
	*reason.Refusal
	hint string
}

func (r *refused) Error() string {
	msg := show(r.Code)
	if r.Detail != "" {
		msg += ": " + show(r.Detail)
	}
	if r.hint != "" {
		msg += "\n" + r.hint
	}
	return msg
}

func (r *refused) Unwrap() error { return r.Refusal }

// localOperatorBounds says what the shipped admin.rego lets the local
// operator do; a refusal carries only the reason code, and the bounds
// live in the policy, where an operator may have changed them.
const localOperatorBounds = `the local operator (Caddy's admin endpoint, no --api) may issue and rotate only read-only tokens (every scope ending in ":read") living at most 1h under the shipped policies/admin.rego (rule local_operator_bounds, jit_max_seconds); for more, ask through the management API: caddy tokengate request --api URL ..., which another person approves`

// localOperatorBoundsCode is the admin policy's refusal of the local
// operator past its bounds. The policy, not internal/reason, declares it.
const localOperatorBoundsCode = "local_operator_bounds"

// explain turns the error of an API call into what the person at the
// terminal reads: a refusal as its code and detail, with a hint where
// one helps; an endpoint that cannot be reached as where and what to
// check (without the HTTP client's layers); anything else as it is.
func explain(err error) error {
	r, ok := refusalOf(err)
	if !ok {
		return asUnreachable(err)
	}
	shown := &refused{Refusal: r}
	if r.Code == localOperatorBoundsCode {
		shown.hint = localOperatorBounds
	}
	return shown
}
