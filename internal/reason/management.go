package reason

// The management API's codes: refusals of a request itself, of its
// parameters, of a token spec, and of an action by the admin policy or
// the state of what it acts on. The store, policy and audit failures are
// the built-in Unavailable codes.
const (
	BodyInvalid           = "body_invalid"
	BodyTooLarge          = "body_too_large"
	ContentTypeInvalid    = "content_type_invalid"
	RouteUnknown          = "route_unknown"
	MethodNotAllowedCode  = "method_not_allowed"
	TokengateNotRunning   = "tokengate_not_running"
	SigninNotConfigured   = "signin_not_configured"
	OpenAPIUnavailable    = "openapi_unavailable"
	EncodingFailed        = "encoding_failed"
	StateInvalid          = "state_invalid"
	LimitInvalid          = "limit_invalid"
	CursorInvalid         = "cursor_invalid"
	UnusedDaysInvalid     = "unused_days_invalid"
	CheckInvalid          = "check_invalid"
	GraceInvalid          = "grace_invalid"
	TTLInvalid            = "ttl_invalid"
	TTLRequired           = "ttl_required"
	TTLExceedsMax         = "ttl_exceeds_max"
	OwnerInvalid          = "owner_invalid"
	PurposeRequired       = "purpose_required"
	PurposeInvalid        = "purpose_invalid"
	TicketInvalid         = "ticket_invalid"
	ScopeInvalid          = "scope_invalid"
	ServiceInvalid        = "service_invalid"
	CIDRInvalid           = "cidr_invalid"
	MaxUsesInvalid        = "max_uses_invalid"
	RateLimitInvalid      = "rate_limit_invalid"
	NotBeforeInvalid      = "not_before_invalid"
	SecretInField         = "secret_in_field"
	ReasonRequired        = "reason_required"
	ReasonInvalid         = "reason_invalid"
	RequesterInvalid      = "requester_invalid"
	ApproverInvalid       = "approver_invalid"
	BackupUnsupported     = "backup_unsupported"
	SelfApproval          = "self_approval"
	TTLTooShort           = "ttl_too_short"
	NotAWorkload          = "not_a_workload"
	BreakGlassCodeInvalid = "break_glass_code_invalid"
	TokenNotFound         = "token_not_found"
	RequestNotFound       = "request_not_found"
	BreakGlassUnknown     = "break_glass_unknown"
	AlreadyRevoked        = "already_revoked"
	AlreadyBootstrapped   = "already_bootstrapped"
	RequestNotPending     = "request_not_pending"
	RequestNotApproved    = "request_not_approved"
	BreakGlassPending     = "break_glass_pending"
	BreakGlassTooEarly    = "break_glass_too_early"
	SubjectTokenUsed      = "subject_token_used"
	TokenExhausted        = "token_exhausted"
	RequestClaimed        = "request_claimed"
	RequestLapsed         = "request_lapsed"
	BreakGlassExpired     = "break_glass_expired"
)

// Management lists the management API's codes. The admin policy may add
// codes of its own (403).
var Management = []Code{
	{BodyInvalid, BadRequest, "the body is not the one JSON object (or form) expected, or not UTF-8"},
	{BodyTooLarge, TooLarge, "the body exceeds 64 KiB"},
	{ContentTypeInvalid, UnsupportedMedia, "the body is not application/json (the exchange: not a UTF-8 form)"},
	{RouteUnknown, NotFound, "no route of the API has that path"},
	{MethodNotAllowedCode, MethodNotAllowed, "the path is served with other methods, which Allow lists"},
	{TokengateNotRunning, Unavailable, "the admin endpoint's running config has no tokengate app"},
	{SigninNotConfigured, NotFound, "no oidc issuer is configured: people cannot sign in"},
	{OpenAPIUnavailable, Unavailable, "the embedded API description could not be served"},
	{EncodingFailed, Internal, "the answer could not be encoded as JSON"},
	{StateInvalid, BadRequest, "state is not one of the states listed"},
	{LimitInvalid, BadRequest, "limit is not a whole number from 1 to 1000"},
	{CursorInvalid, BadRequest, "cursor is not one this API gave out"},
	{UnusedDaysInvalid, BadRequest, "unused_days is not a whole number from 1 to 3650"},
	{CheckInvalid, BadRequest, "a dry run lacks token_id or service"},
	{GraceInvalid, BadRequest, "grace is not a duration from 0 to its maximum"},
	{TTLInvalid, BadRequest, "ttl is not a positive duration such as 30m, 1h or 30d"},
	{TTLRequired, BadRequest, "the token spec has no ttl"},
	{TTLExceedsMax, BadRequest, "ttl is longer than max_ttl"},
	{OwnerInvalid, BadRequest, "owner is not a principal of the allowed characters and length"},
	{PurposeRequired, BadRequest, "the token spec has no purpose"},
	{PurposeInvalid, BadRequest, "purpose is too long"},
	{TicketInvalid, BadRequest, "ticket is too long"},
	{ScopeInvalid, BadRequest, "a scope is not of the form <service>:<access>, or too many"},
	{ServiceInvalid, BadRequest, "a service has characters a service may not have, or too many"},
	{CIDRInvalid, BadRequest, "a CIDR does not parse, or too many"},
	{MaxUsesInvalid, BadRequest, "max_uses is negative"},
	{RateLimitInvalid, BadRequest, "rate_limit is not requests/window with requests above 0 and a window of 1s, 1m, 1h or 24h"},
	{NotBeforeInvalid, BadRequest, "not_before lies in the past or beyond max_ttl"},
	{SecretInField, BadRequest, "a free-text field holds what looks like a secret"},
	{ReasonRequired, BadRequest, "a revocation or recovery without a reason"},
	{ReasonInvalid, BadRequest, "reason is too long, or holds what a free-text field may not"},
	{RequesterInvalid, BadRequest, "the bootstrap or recovery requester is not a valid name"},
	{ApproverInvalid, BadRequest, "the bootstrap or recovery approver is not a valid name"},
	{BackupUnsupported, BadRequest, "the store is not bolt (back up PostgreSQL with pg_dump)"},
	{SelfApproval, Forbidden, "the requester approves their own request, or names themselves twice"},
	{TTLTooShort, Forbidden, "the admin policy asks for a longer ttl"},
	{NotAWorkload, Forbidden, "the exchange's caller is not a verified workload"},
	{BreakGlassCodeInvalid, Forbidden, "the confirmation code is not the one in the code file"},
	{TokenNotFound, NotFound, "no token with that id"},
	{RequestNotFound, NotFound, "no request with that id"},
	{BreakGlassUnknown, NotFound, "no pending recovery with that id on this node"},
	{AlreadyRevoked, Conflict, "the token is revoked already"},
	{AlreadyBootstrapped, Conflict, "management tokens exist already"},
	{RequestNotPending, Conflict, "the request was decided already"},
	{RequestNotApproved, Conflict, "the request is not approved, so there is nothing to claim"},
	{BreakGlassPending, Conflict, "a recovery is pending on this node already"},
	{BreakGlassTooEarly, Conflict, "the recovery's delay has not passed"},
	{SubjectTokenUsed, Conflict, "the subject token was exchanged already"},
	{TokenRevoked, Conflict, "rotating a revoked token"},
	{TokenRotated, Conflict, "rotating a token rotated already"},
	{TokenExpired, Conflict, "rotating an expired token"},
	{TokenExhausted, Conflict, "rotating a token with no use left"},
	{RequestClaimed, Gone, "the secret was claimed already"},
	{RequestLapsed, Gone, "the approved request was not claimed in time"},
	{BreakGlassExpired, Gone, "the recovery expired"},
}

// The identity checks' codes: why an ID token (people) or a subject token
// (workloads) was not accepted.
const (
	IDTokenMalformed      = "id_token_malformed"
	IDTokenAlgorithm      = "id_token_algorithm"
	IDTokenSignature      = "id_token_signature"
	IDTokenIssuer         = "id_token_issuer"
	IDTokenAudience       = "id_token_audience"
	IDTokenExpired        = "id_token_expired"
	IDTokenNotYetValid    = "id_token_not_yet_valid"
	IDTokenTooOld         = "id_token_too_old"
	PrincipalClaimMissing = "principal_claim_missing"
	EmailNotVerified      = "email_not_verified"
	IssuerUnavailable     = "issuer_unavailable"
	IDTokenAZP            = "id_token_azp"
	PrincipalInvalid      = "principal_invalid"
	SigninNotAllowed      = "signin_not_allowed"
)

// Identity lists the identity checks' codes.
var Identity = []Code{
	{IDTokenMalformed, Invalid, "not a signed JWT, or too long for one"},
	{IDTokenAlgorithm, Invalid, "signed with an algorithm that is not allowed"},
	{IDTokenSignature, Invalid, "the signature does not verify with the issuer's keys"},
	{IDTokenIssuer, Invalid, "iss is not the configured issuer"},
	{IDTokenAudience, Invalid, "aud does not name this gateway"},
	{IDTokenExpired, Invalid, "past exp"},
	{IDTokenNotYetValid, Invalid, "before nbf"},
	{IDTokenTooOld, Invalid, "issued longer ago than the issuer's max_age"},
	{PrincipalClaimMissing, Invalid, "the configured principal claim is missing"},
	{EmailNotVerified, Invalid, "the principal claim is email, and email_verified is not true"},
	{IssuerUnavailable, Unavailable, "the issuer's discovery or keys could not be fetched (fail closed)"},
	{IDTokenAZP, Invalid, "azp names another client"},
	{PrincipalInvalid, Invalid, "the principal holds characters or a prefix a principal may not have"},
	{SigninNotAllowed, Forbidden, "a good token of someone who may not sign in here"},
}

// The token exchange's codes, answered in OAuth's shape (RFC 6749
// section 5.2): 400 with the OAuth error code, 429 or 503.
const (
	QueryNotAllowed               = "query_not_allowed"
	ParameterRepeated             = "parameter_repeated"
	GrantTypeMissing              = "grant_type_missing"
	GrantTypeUnsupported          = "grant_type_unsupported"
	ActorTokenUnsupported         = "actor_token_unsupported"
	SubjectTokenMissing           = "subject_token_missing"
	SubjectTokenTypeMissing       = "subject_token_type_missing"
	SubjectTokenTypeUnsupported   = "subject_token_type_unsupported"
	RequestedTokenTypeUnsupported = "requested_token_type_unsupported"
	ResourceUnsupported           = "resource_unsupported"
	AudienceMissing               = "audience_missing"
	AudienceMultiple              = "audience_multiple"
	ExchangeScopeMissing          = ScopeMissing
	ExchangeNotConfigured         = "exchange_not_configured"
	ExchangeFailed                = "exchange_failed"
)

// Exchange lists the token exchange's codes; the identity codes tell why a
// subject token was refused.
var Exchange = []Code{
	{ContentTypeInvalid, BadRequest, "the body is not a UTF-8 form"},
	{QueryNotAllowed, BadRequest, "parameters in the URL"},
	{BodyTooLarge, BadRequest, "the form exceeds 64 KiB"},
	{BodyInvalid, BadRequest, "the form does not parse, or is not UTF-8"},
	{ParameterRepeated, BadRequest, "a parameter given once at most is repeated"},
	{GrantTypeMissing, BadRequest, "no grant_type"},
	{GrantTypeUnsupported, BadRequest, "another grant_type than token exchange"},
	{ActorTokenUnsupported, BadRequest, "delegation (actor_token) is asked for"},
	{SubjectTokenMissing, BadRequest, "no subject_token"},
	{SubjectTokenTypeMissing, BadRequest, "no subject_token_type"},
	{SubjectTokenTypeUnsupported, BadRequest, "a subject_token_type other than jwt or id_token"},
	{RequestedTokenTypeUnsupported, BadRequest, "a requested_token_type other than access_token"},
	{ResourceUnsupported, BadRequest, "resource is given (name the service in audience)"},
	{AudienceMissing, BadRequest, "no audience (the tokengate service)"},
	{AudienceMultiple, BadRequest, "more than one audience"},
	{ExchangeScopeMissing, BadRequest, "no scope"},
	{ScopeInvalid, BadRequest, "scopes not separated by single spaces, or not allowed"},
	{ServiceInvalid, BadRequest, "the audience is not a valid service"},
	{ExchangeNotConfigured, BadRequest, "no workload issuer is configured"},
	{SubjectTokenUsed, BadRequest, "the subject token was exchanged already"},
	{MethodNotAllowedCode, MethodNotAllowed, "a method other than POST"},
	{RateLimited, TooManyRequests, "too many attempts from one client address"},
	{ExchangeFailed, Unavailable, "the audit line's reason when the store failed during an exchange (the answer says store_unavailable)"},
}
