package token

import (
	"fmt"
	"net/url"
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
		{"/demo/TG_" + secret[3:], "/demo/TG_" + Redacted},
		{"/demo/Tg%5F" + secret[3:], "/demo/Tg%5F" + Redacted},
		{"/demo/%74%67%5f" + secret[3:], "/demo/%74%67%5f" + Redacted},
		{"/demo/%54%47_" + percentEncode(secret[3:]) + "/x", "/demo/%54%47_" + Redacted + "/x"},
		{"/demo/" + secret[:12] + "\u200b" + secret[12:], "/demo/tg_" + Redacted},
		{"/demo/" + secret[:12] + "%E2%80%8B" + secret[12:] + "?a", "/demo/tg_" + Redacted + "?a"},
		{"/demo/" + secret[:9] + "%c2%ad" + secret[9:20] + "\u00ad" + secret[20:], "/demo/tg_" + Redacted},
		{"/demo/t\u200bg_" + secret[3:], "/demo/t\u200bg_" + Redacted},
		{"/demo/" + secret + "\u200b/next", "/demo/tg_" + Redacted + "\u200b/next"},
		{"/docs/TG_SETUP_GUIDE", "/docs/TG_SETUP_GUIDE"},
		{"/100%25/%zz/%", "/100%25/%zz/%"},
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

// percentEncode writes every byte of s as %XX.
func percentEncode(s string) string {
	var b strings.Builder
	for i := range len(s) {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

// spell writes secret as a client might put it in a URL: its prefix in
// another case, characters percent-encoded, an invisible character
// (raw or percent-encoded) inside. how picks the variant.
func spell(secret string, how uint16) string {
	prefix := []string{"tg_", "TG_", "Tg_", "tg%5F", "TG%5f", "%74%67%5F"}[int(how)%6]
	body := secret[len(Prefix):]
	if how&0x40 != 0 {
		body = percentEncode(body)
	}
	if how&0x80 != 0 {
		split := []string{"\u200b", "%E2%80%8B", "\u00ad", "%C2%AD", "\u2060", "\ufeff", "%EF%BB%BF"}[int(how>>8)%7]
		at := int(how>>11) % (len(secret) - len(Prefix))
		if how&0x40 != 0 {
			at *= 3
		}
		body = body[:at] + split + body[at:]
	}
	return prefix + body
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
		if want := around[:at] + "tg_" + Redacted + "/" + around[at:]; !strings.Contains(strings.ToLower(around), "tg") && !strings.Contains(around, "%") && out != want {
			t.Fatalf("Redact(%q) = %q, want %q: only the secret goes", in, out, want)
		}
	})
}

// Whatever the spelling of a secret (case, escapes, invisible characters
// inside), Redact leaves none of it: decoded and stripped of invisible
// characters, the output holds no 16 characters of the secret's body.
func FuzzRedactSpellings(f *testing.F) {
	f.Add("/demo/", "/items", uint16(0))
	f.Add("", "", uint16(1))
	f.Add("/a/", "?x=1", uint16(0x40|3))
	f.Add("/tg", "_", uint16(0x80|5<<8|20<<11))
	f.Add("/%", "%", uint16(0xc0|2<<8|7<<11|5))
	f.Fuzz(func(t *testing.T, before, after string, how uint16) {
		secret := NewSecret()
		in := before + spell(secret, how) + "/" + after
		out := Redact(in)
		plain, err := url.PathUnescape(out)
		if err != nil {
			plain = out
		}
		plain = strings.Map(func(r rune) rune {
			if Invisible(r) {
				return -1
			}
			return r
		}, plain)
		body := secret[len(Prefix):]
		for i := 0; i+redactMin <= len(body); i++ {
			if strings.Contains(plain, body[i:i+redactMin]) {
				t.Fatalf("Redact(%q) = %q keeps %q of the secret", in, out, body[i:i+redactMin])
			}
		}
	})
}

// BenchmarkRedact runs Redact over paths as the audit line sees them:
// most hold no secret (and many a t), a few hold one.
func BenchmarkRedact(b *testing.B) {
	paths := []string{
		"/billing/invoices/2024-03/items/42", "/search/tenants/acme/tests/latest?x=1",
		"/docs/tg_setup_guide", "/billing/keys/" + NewSecret(), "/a/b/c",
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = Redact(paths[i%len(paths)])
	}
}
