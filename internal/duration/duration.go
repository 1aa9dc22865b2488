// Package duration is a time.Duration that reads from JSON as Caddy's
// config durations do, so that a config type can live outside the Caddy
// glue and still read exactly as before.
package duration

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration in JSON: an integer of nanoseconds, or a
// string such as "300ms", "1.5h", "2h45m" or "1d" (a day is 24h). It is
// written back as the integer, as caddy.Duration is.
type Duration time.Duration

// UnmarshalJSON reads "12h", "1d12h" or 43200000000000.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return io.EOF
	}
	var v time.Duration
	var err error
	if b[0] == '"' && b[len(b)-1] == '"' {
		v, err = Parse(strings.Trim(string(b), `"`))
	} else {
		err = json.Unmarshal(b, &v)
	}
	*d = Duration(v)
	return err
}

// Parse is time.ParseDuration that also takes days ("d", 24h each, with
// a fraction too: "1.5d"), anywhere in the string, as caddy.ParseDuration
// does. Strings longer than 1024 bytes are refused.
func Parse(s string) (time.Duration, error) {
	if len(s) > 1024 {
		return 0, errors.New("parsing duration: input string too long")
	}
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
