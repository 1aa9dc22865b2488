// Package duration is a time.Duration that reads and writes JSON as
// caddy.Duration does, for config types that live outside caddymodule:
// a Caddy config written for the Caddy type reads the same with this one.
package duration

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration in JSON as Caddy reads one: a string such
// as "300ms", "1.5h" or "2d" (a day is 24h), or an integer of
// nanoseconds. It is written as an integer of nanoseconds, as Caddy
// writes a caddy.Duration (an adapted Caddyfile, for one).
type Duration time.Duration

// UnmarshalJSON reads "12h", "1d12h" or 43200000000000.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return io.EOF
	}
	var dur time.Duration
	var err error
	if b[0] == '"' && b[len(b)-1] == '"' {
		dur, err = Parse(strings.Trim(string(b), `"`))
	} else {
		err = json.Unmarshal(b, &dur)
	}
	*d = Duration(dur)
	return err
}

// MarshalJSON writes the integer of nanoseconds.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(int64(d)) }

// Parse is time.ParseDuration that also takes days, "d" for 24h, as
// caddy.ParseDuration does: "1d", "1.5d", "2d12h", "-1d". The input is at
// most 1024 bytes.
func Parse(s string) (time.Duration, error) {
	if len(s) > 1024 {
		return 0, fmt.Errorf("parsing duration: input string too long")
	}
	// Each number followed by d is rewritten in hours, then the whole
	// is time.ParseDuration's.
	var inNumber bool
	var numStart int
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch == 'd' {
			days, err := strconv.ParseFloat(s[numStart:i], 64)
			if err != nil {
				return 0, err
			}
			hours := strconv.FormatFloat(days*24, 'f', -1, 64)
			s = s[:numStart] + hours + "h" + s[i+1:]
			i--
			continue
		}
		if !inNumber {
			numStart = i
		}
		inNumber = (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '+'
	}
	return time.ParseDuration(s)
}
