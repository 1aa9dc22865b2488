package reason

// The web console's codes: its pages answer with them (an error page with
// the code) and its security-key calls with them as JSON.
const (
	ConsoleUnavailable = "console_unavailable"
	CSRFInvalid        = "csrf_invalid"
	SigninRequired     = "signin_required"
	SigninStateInvalid = "signin_state_invalid"
	SigninRefused      = "signin_refused"
	SigninFailed       = "signin_failed"
	DecisionInvalid    = "decision_invalid"
	StepUpRequired     = "step_up_required"
	StepUpUnavailable  = "step_up_unavailable"
	StepUpInvalid      = "step_up_invalid"
	StepUpMismatch     = "step_up_mismatch"
	StepUpExpired      = "step_up_expired"
	StepUpReplayed     = "step_up_replayed"
	NoSecurityKey      = "no_security_key"
	KeyNotFound        = "key_not_found"
)

// Console lists the web console's codes. step_up_required is also the
// admin policy's: an approval through the API or the CLI that needs a
// security key gets it, naming the console page.
var Console = []Code{
	{ConsoleUnavailable, NotFound, "the web console needs an oidc issuer in the tokengate app"},
	{CSRFInvalid, Forbidden, "a form post without its session's CSRF token (a cross-site post, or a stale page)"},
	{SigninRequired, Invalid, "no console session, or it ended (idle or absolute timeout, sign-out)"},
	{SigninStateInvalid, BadRequest, "the sign-in callback's state is not the one this browser's sign-in made"},
	{SigninRefused, Invalid, "the identity provider answered the sign-in with an error"},
	{SigninFailed, Invalid, "the code could not be redeemed or its ID token did not verify, or its nonce is not this sign-in's"},
	{DecisionInvalid, BadRequest, "a decision that is neither approve nor deny"},
	{StepUpRequired, Forbidden, "approving a write or delete on a production service needs a security key's assertion bound to the request"},
	{StepUpUnavailable, NotFound, "security keys are not set up on this gateway (the console is reached at an IP address)"},
	{StepUpInvalid, Forbidden, "the assertion or registration is malformed, from another origin, or not from one of your keys"},
	{StepUpMismatch, Forbidden, "the assertion was made for another request, another version of it, or another session"},
	{StepUpExpired, Forbidden, "the assertion answered a challenge older than 5 minutes"},
	{StepUpReplayed, Forbidden, "the assertion was used before, or the key's signature counter did not advance"},
	{NoSecurityKey, Conflict, "a step-up asked of a person with no registered security key"},
	{KeyNotFound, NotFound, "you have no security key with that id"},
}
