//go:build !unix

package benchdata

import "testing"

// MeasureCPU reports nothing where getrusage is missing.
func MeasureCPU(*testing.B) func() { return func() {} }
