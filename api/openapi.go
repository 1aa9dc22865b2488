package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 description of the management API, served at
// GET /v1/openapi.json. The e2e tests check real answers against it.
//
//go:embed openapi.json
var OpenAPI []byte
