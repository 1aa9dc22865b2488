package caddymodule

import "github.com/tokengate/caddy-tokengate/api"

// The tests decode answers into the API's types under short names.
type (
	APIError        = api.ErrorBody
	TokenView       = api.TokenView
	IssuedToken     = api.IssuedToken
	RequestView     = api.RequestView
	RequestOutcome  = api.RequestOutcome
	CheckResult     = api.CheckResult
	BootstrapResult = api.BootstrapResult
)
