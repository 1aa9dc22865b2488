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

// A call's refusal tells the most telling code, keeps every reason for the
// audit line, and classes a policy's own code Forbidden even when another
// list declares that code (request_not_found is the management API's 404).
func TestOfCall(t *testing.T) {
	r := OfCall([]string{"office_hours", TokenExpired, ScopeMissing})
	if r.Code != TokenExpired || r.Class != Invalid || len(r.AllReasons()) != 3 || r.Detail != "" {
		t.Errorf("OfCall = %+v", r)
	}
	if DeclaredClass("request_not_found") == Forbidden {
		t.Fatal("request_not_found is no longer declared with a class of its own; pick another management code")
	}
	if r := OfCall([]string{"request_not_found"}); r.Class != Forbidden || r.Class.Status() != 403 {
		t.Errorf("a policy's request_not_found: %+v, want Forbidden", r)
	}
}
