package console

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The console block reads as Caddy's JSON does (durations as "30m" or
// nanoseconds), and an address that events cannot link to is refused.
func TestSettings(t *testing.T) {
	var s Settings
	in := `{"url":"https://gateway.example.com/","client_secret":"x","idle_timeout":"15m","session_lifetime":3600000000000}`
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	if s.URL != "https://gateway.example.com/" || s.ClientSecret != "x" || time.Duration(s.IdleTimeout) != 15*time.Minute || time.Duration(s.SessionLifetime) != time.Hour {
		t.Errorf("read %+v", s)
	}
	if base, err := s.BaseURL(); err != nil || base == "" {
		t.Errorf("BaseURL: %q %v", base, err)
	}
	var none *Settings
	if base, err := none.BaseURL(); base != "" || err != nil {
		t.Errorf("no console block: %q %v", base, err)
	}
	if _, err := (&Settings{URL: "ftp://gateway.example.com"}).BaseURL(); err == nil || !strings.HasPrefix(err.Error(), "console: ") {
		t.Errorf("ftp address: %v", err)
	}
	if _, err := none.Assemble(Parts{}); err != ErrNoPeopleStore {
		t.Errorf("a store without sessions: %v, want ErrNoPeopleStore", err)
	}
}
