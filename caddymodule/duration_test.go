package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/caddy-tokengate/internal/duration"
)

// TestDurationReadsAsCaddys holds internal/duration to caddy.Duration,
// which the config fields it replaces were: the same JSON reads as the
// same value or fails on both, and is written back the same.
func TestDurationReadsAsCaddys(t *testing.T) {
	t.Parallel()
	inputs := []string{
		`"12h"`, `"300ms"`, `"1.5h"`, `"2h45m"`, `"1d"`, `"1.5d"`, `"2d6h"`, `"1h1d"`, `"-1d"`, `"+2d"`,
		`"0"`, `"0d"`, `"1d1d"`, `"d"`, `"1dd"`, `".5d"`, `"1e3d"`, `"1x"`, `""`, `"soon"`, `"10us"`, `"10µs"`,
		`"` + strings.Repeat("0", 1022) + `1h"`, `"` + strings.Repeat("0", 1023) + `1h"`,
		`3600000000000`, `0`, `-5`, `1.5`, `true`, `null`, `"9223372036854775807ns"`, `"106752d"`, `"106751d"`,
	}
	for _, in := range inputs {
		var ours duration.Duration
		var theirs caddy.Duration
		errOurs := json.Unmarshal([]byte(in), &ours)
		errTheirs := json.Unmarshal([]byte(in), &theirs)
		if (errOurs == nil) != (errTheirs == nil) || int64(ours) != int64(theirs) {
			t.Errorf("%.40s: ours %d (%v), Caddy's %d (%v)", in, ours, errOurs, theirs, errTheirs)
		}
		if errOurs == nil {
			a, _ := json.Marshal(ours)
			b, _ := json.Marshal(theirs)
			if string(a) != string(b) {
				t.Errorf("%.40s written as %s, Caddy's as %s", in, a, b)
			}
		}
	}
}
