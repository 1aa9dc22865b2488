package token

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	secret := NewSecret()
	typo := secret[:10] + "x" + secret[11:] // a wrong checksum is still a secret
	cases := []struct{ in, want string }{
		{"/demo/items/42", "/demo/items/42"},
		{"/docs/tg_setup_guide", "/docs/tg_setup_guide"},
		{"/demo/" + secret, "/demo/tg_" + Redacted},
		{"/demo/" + secret + "/items", "/demo/tg_" + Redacted + "/items"},
		{"/demo/" + typo, "/demo/tg_" + Redacted},
		{"/demo/x" + secret[:len(Prefix)+redactMin], "/demo/xtg_" + Redacted},
		{"/demo/" + secret[:len(Prefix)+redactMin-1], "/demo/" + secret[:len(Prefix)+redactMin-1]},
		{"/a/" + secret + "/b/" + secret, "/a/tg_" + Redacted + "/b/tg_" + Redacted},
		{"/demo/tg%5F" + secret[3:], "/demo/tg%5F" + Redacted},
		{"/demo/tg%5f" + secret[3:], "/demo/tg%5f" + Redacted},
		{"tg_", "tg_"},
		{"tg%5", "tg%5"},
		{"", ""},
	}
	for _, c := range cases {
		if got := Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRedactDoesNotAllocateWithoutASecret(t *testing.T) {
	path := "/demo/items/42/tg_short"
	if n := testing.AllocsPerRun(100, func() { _ = Redact(path) }); n != 0 {
		t.Fatalf("%v allocations for a path without a secret", n)
	}
}

// Whatever the input, no secret survives and text around it is kept.
func FuzzRedact(f *testing.F) {
	f.Add("/demo/"+NewSecret(), 3)
	f.Add("tg%5F", 0)
	f.Fuzz(func(t *testing.T, around string, at int) {
		secret := NewSecret()
		if at < 0 {
			at = -at
		}
		at %= len(around) + 1
		in := around[:at] + secret + "/" + around[at:]
		out := Redact(in)
		if strings.Contains(out, secret[len(Prefix):len(Prefix)+redactMin]) {
			t.Fatalf("Redact(%q) = %q keeps the secret", in, out)
		}
		if want := around[:at] + "tg_" + Redacted + "/" + around[at:]; !strings.Contains(around, "tg") && out != want {
			t.Fatalf("Redact(%q) = %q, want %q: only the secret goes", in, out, want)
		}
	})
}
