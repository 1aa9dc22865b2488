package reason

// The leak intake's codes (POST /v1/leaks, POST /v1/leaks/github and
// GitHub's webhook): answered as problem details, each with the status of
// its class, and written on the attempt's leak.reported line.
const (
	BodyUnreadable   = "body_unreadable"
	LeaksGitHubOff   = "leaks_github_off"
	LeaksWebhookOff  = "leaks_webhook_off"
	SignatureMissing = "signature_missing"
	KeyUnknown       = "key_unknown"
	SignatureInvalid = "signature_invalid"
	KeysUnavailable  = "keys_unavailable"
	ReportInvalid    = "report_invalid"
)

// Leaks lists the leak intake's codes. A report from a caller the admin
// policy does not let report is refused with the policy's first reason
// (403).
var Leaks = []Code{
	{RateLimited, TooManyRequests, "too many reports from one client address; `Retry-After` says when to try again"},
	{MethodNotAllowedCode, MethodNotAllowed, "a method other than POST"},
	{BodyTooLarge, TooLarge, "the report exceeds 1 MB"},
	{BodyUnreadable, BadRequest, "the body could not be read"},
	{ReportInvalid, BadRequest, "the body is not a report of a known shape, or holds too many findings"},
	{LeaksGitHubOff, NotFound, "GitHub's partner alerts are not taken here (no `github_keys` configured)"},
	{LeaksWebhookOff, NotFound, "GitHub's webhooks are not taken here (no `webhook_secret` configured)"},
	{SignatureMissing, Invalid, "a partner alert without GitHub's key id and signature headers"},
	{KeyUnknown, Invalid, "no GitHub key has the alert's key id"},
	{SignatureInvalid, Invalid, "the alert's signature, or the webhook's X-Hub-Signature-256, does not verify"},
	{KeysUnavailable, Unavailable, "GitHub's public keys could not be read (fail closed)"},
	{StoreUnavailable, Unavailable, "the token store could not be read"},
	{PolicyUnavailable, Unavailable, "the admin policy could not decide whether the caller may report"},
}
