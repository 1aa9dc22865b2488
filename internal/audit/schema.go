package audit

import _ "embed"

// Schema is the JSON Schema (draft 7) every audit line conforms to. Log
// pipelines can validate against it; the tests validate real lines.
//
//go:embed audit.schema.json
var Schema []byte
