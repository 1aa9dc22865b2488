package duration

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// A config field that was a caddy.Duration must read every input exactly
// as it did, and write the same JSON.
func TestReadsAndWritesAsCaddyDuration(t *testing.T) {
	for _, in := range []string{`"30s"`, `"1h"`, `"1d"`, `"1.5d"`, `"2d6h"`, `"1h2d"`, `"-1d"`, `"500ms"`,
		`3600000000000`, `0`, `-5`, `"0"`, `""`, `"1x"`, `"d"`, `true`, `null`, `1.5`, `"1e3s"`} {
		var got Duration
		var want caddy.Duration
		gotErr := json.Unmarshal([]byte(in), &got)
		wantErr := json.Unmarshal([]byte(in), &want)
		if (gotErr == nil) != (wantErr == nil) || int64(got) != int64(want) {
			t.Errorf("%s: read %d (%v), caddy.Duration reads %d (%v)", in, got, gotErr, want, wantErr)
		}
		if gotErr != nil {
			continue
		}
		gotOut, _ := json.Marshal(got)
		wantOut, _ := json.Marshal(want)
		if string(gotOut) != string(wantOut) {
			t.Errorf("%s: written %s, caddy.Duration writes %s", in, gotOut, wantOut)
		}
	}
}

func TestParseDays(t *testing.T) {
	for in, want := range map[string]time.Duration{"1d": 24 * time.Hour, "1.5d": 36 * time.Hour, "2d6h": 54 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	long := make([]byte, 1025)
	for i := range long {
		long[i] = '1'
	}
	if _, err := Parse(string(long) + "s"); err == nil {
		t.Error("a string over 1024 bytes was accepted")
	}
}
