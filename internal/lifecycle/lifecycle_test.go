package lifecycle

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

func TestValidate(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s := &Service{MaxTTL: 48 * time.Hour, Now: func() time.Time { return now }}
	good := func() Spec {
		return Spec{Owner: "alice", Purpose: "p", Scopes: []string{"billing:read", "billing:read"}, Services: []string{"billing"},
			CIDRs: []string{"10.1.2.3/8", "2001:db8::1/32"}, TTL: "1h"}
	}
	rec, err := s.Validate(good())
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Scopes) != 1 || rec.CIDRs[0] != "10.0.0.0/8" || rec.CIDRs[1] != "2001:db8::/32" || !rec.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("normalised record %+v", rec)
	}
	secret := "tg_" + strings.Repeat("a", 36)
	live := token.NewSecret()
	future := now.Add(100 * time.Hour)
	past := now.Add(-time.Hour)
	cases := map[string]struct {
		mutate func(*Spec)
		code   string
	}{
		"no owner":          {func(sp *Spec) { sp.Owner = "" }, "owner_invalid"},
		"owner with spaces": {func(sp *Spec) { sp.Owner = "a b" }, "owner_invalid"},
		"no purpose":        {func(sp *Spec) { sp.Purpose = "" }, "purpose_required"},
		"huge purpose":      {func(sp *Spec) { sp.Purpose = strings.Repeat("x", 600) }, "purpose_invalid"},
		"no scopes":         {func(sp *Spec) { sp.Scopes = nil }, "scope_invalid"},
		"bad scope":         {func(sp *Spec) { sp.Scopes = []string{"admin"} }, "scope_invalid"},
		"secret as scope":   {func(sp *Spec) { sp.Scopes = []string{secret} }, "scope_invalid"},
		"no services":       {func(sp *Spec) { sp.Services = nil }, "service_invalid"},
		"bad cidr":          {func(sp *Spec) { sp.CIDRs = []string{"10.0.0.0/33"} }, "cidr_invalid"},
		"no ttl":            {func(sp *Spec) { sp.TTL = "" }, "ttl_required"},
		"negative ttl":      {func(sp *Spec) { sp.TTL = "-5m" }, "ttl_invalid"},
		"ttl over max":      {func(sp *Spec) { sp.TTL = "49h" }, "ttl_exceeds_max"},
		"negative uses":     {func(sp *Spec) { sp.MaxUses = -1 }, "max_uses_invalid"},
		"rate window 2m":    {func(sp *Spec) { sp.RateLimit = "100/2m" }, "rate_limit_invalid"},
		"rate of 0":         {func(sp *Spec) { sp.RateLimit = "0/1m" }, "rate_limit_invalid"},
		"rate not a rate":   {func(sp *Spec) { sp.RateLimit = "fast" }, "rate_limit_invalid"},
		"secret as rate":    {func(sp *Spec) { sp.RateLimit = live }, "rate_limit_invalid"},
		"start in the past": {func(sp *Spec) { sp.NotBefore = &past }, "not_before_invalid"},
		"start too far":     {func(sp *Spec) { sp.NotBefore = &future }, "not_before_invalid"},

		"purpose rewriting a terminal line": {func(sp *Spec) { sp.Purpose = "ok\r\x1b[2Kfake row" }, "purpose_invalid"},
		"purpose with a newline":            {func(sp *Spec) { sp.Purpose = "a\nb" }, "purpose_invalid"},
		"purpose with C1":                   {func(sp *Spec) { sp.Purpose = "a\u009b2K" }, "purpose_invalid"},
		"purpose with a bidi override":      {func(sp *Spec) { sp.Purpose = "a\u202eb" }, "purpose_invalid"},
		"purpose not UTF-8":                 {func(sp *Spec) { sp.Purpose = "caf\xe9" }, "purpose_invalid"},
		"owner with an escape":              {func(sp *Spec) { sp.Owner = "alice\x1b" }, "owner_invalid"},
		"live secret as owner":              {func(sp *Spec) { sp.Owner = live }, "secret_in_field"},
		"live secret in purpose":            {func(sp *Spec) { sp.Purpose = "use " + live + " meanwhile" }, "secret_in_field"},
		"live secret as service":            {func(sp *Spec) { sp.Services = []string{live} }, "secret_in_field"},
		"live secret in ticket":             {func(sp *Spec) { sp.Ticket = "see " + live }, "secret_in_field"},
		"ticket with an escape":             {func(sp *Spec) { sp.Ticket = "CHG-1\x1b[2K" }, "ticket_invalid"},
		"huge ticket":                       {func(sp *Spec) { sp.Ticket = strings.Repeat("x", 600) }, "ticket_invalid"},
	}
	for name, c := range cases {
		sp := good()
		c.mutate(&sp)
		_, err := s.Validate(sp)
		var e *Error
		if !errors.As(err, &e) || e.Code != c.code || e.Class != KindInvalid {
			t.Errorf("%s: got %v, want %s", name, err, c.code)
			continue
		}
		if strings.Contains(e.Detail, secret) || strings.Contains(e.Detail, live[3:]) || strings.ContainsAny(e.Detail, "\r\n\x1b\u202e") {
			t.Errorf("%s: the message echoes a pasted secret: %s", name, e.Detail)
		}
	}
}

func TestCheckReason(t *testing.T) {
	live := token.NewSecret()
	for _, tc := range []struct{ name, reason, code string }{
		{"empty", "", ""},
		{"plain", "ticket FIN-12", ""},
		{"too long", strings.Repeat("x", 513), "reason_invalid"},
		{"cursor movement", "done\r\x1b[1A", "reason_invalid"},
		{"bidi isolate", "rtl \u2067 isolate", "reason_invalid"},
		{"pasted secret", "leaked: " + live + " oops", "secret_in_field"},
	} {
		err := CheckReason(tc.reason)
		var e *Error
		if tc.code == "" {
			if err != nil {
				t.Errorf("%s: refused: %v", tc.name, err)
			}
			continue
		}
		if !errors.As(err, &e) || e.Code != tc.code || e.Class != KindInvalid || strings.Contains(e.Detail, live[3:]) {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.code)
		}
	}
}

func TestSafeID(t *testing.T) {
	for _, tc := range []struct {
		name, id string
		keep     bool
	}{
		{"token id", token.NewID(), true},
		{"request id", "req_abc123", true},
		{"pasted secret", token.NewSecret(), false},
		{"escape sequence", "tok_\x1b[2K", false},
		{"space", "tok_a b", false},
		{"empty", "", false},
		{"prefix only", "tok_", false},
		{"too long", "tok_" + strings.Repeat("a", 65), false},
	} {
		want := ""
		if tc.keep {
			want = tc.id
		}
		if SafeID(tc.id) != want {
			t.Errorf("%s: SafeID should keep it: %v", tc.name, tc.keep)
		}
	}
	secret := token.NewSecret()
	var e *Error
	if err := (&Service{}).storeError(secret, store.ErrNotFound); !errors.As(err, &e) || e.Code != "token_not_found" || strings.Contains(e.Detail, secret[3:]) {
		t.Errorf("not found, for a secret pasted as an id: %v", e)
	}
}

// A token nobody is recorded to hold is never stored: the admin policy
// would take it for a legacy token and trust its owner's name.
func TestCreateNeedsAHolder(t *testing.T) {
	s := &Service{Hasher: token.NewHasher("")}
	rec := &store.Token{Owner: "alice", Purpose: "p"}
	if _, err := s.Create(t.Context(), rec); err == nil || rec.ID != "" {
		t.Fatalf("stored a token without a holder: %v", err)
	}
}
