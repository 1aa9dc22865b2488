package reason

import "testing"

func TestMainPrefersTheMostTellingBuiltinCode(t *testing.T) {
	for _, c := range []struct {
		reasons []string
		want    string
	}{
		{[]string{ScopeMissing, TokenRevoked}, TokenRevoked},
		{[]string{"path_forbidden", ScopeMissing}, ScopeMissing},
		{[]string{"path_forbidden", "office_hours"}, "path_forbidden"},
		{[]string{IPNotAllowed, ServiceNotBound}, ServiceNotBound},
	} {
		if got := Main(c.reasons); got != c.want {
			t.Errorf("Main(%v) = %q, want %q", c.reasons, got, c.want)
		}
	}
}

func TestCustomCodesAreForbidden(t *testing.T) {
	if ClassOf("path_forbidden") != Forbidden {
		t.Fatal("a custom code must answer 403")
	}
	if ClassOf(UsesExhausted) != Invalid || ClassOf(TokenMissing) != Absent || ClassOf(AuditUnavailable) != Unavailable {
		t.Fatal("built-in classes changed")
	}
}
