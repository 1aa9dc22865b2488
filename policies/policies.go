// Package policies embeds the default Rego policies, so a gateway with no
// `policy` folder configured still enforces them.
package policies

import "embed"

// FS holds every .rego file in this folder, tests included (the policy
// engine skips files ending in _test.rego), and the default directory
// data, an empty one, at the path that makes it data.tokengate.directory.
//
//go:embed *.rego tokengate/directory/data.json
var FS embed.FS

// Schemas holds the JSON Schemas of the policies' input, the ones the
// engine type-checks policies against: schemas/gateway_input.json for
// package tokengate.gateway and schemas/admin_input.json for
// tokengate.admin. They ship as files so that
// `opa check --strict --schema policies/schemas policies/` checks a policy
// folder as the gateway does, through each package's METADATA annotation.
//
//go:embed schemas/*.json
var Schemas embed.FS
