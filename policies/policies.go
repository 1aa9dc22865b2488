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
