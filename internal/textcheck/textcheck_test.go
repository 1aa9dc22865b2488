package textcheck

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/token"
)

func TestCheckRefuses(t *testing.T) {
	secret := token.NewSecret()
	for _, tc := range []struct {
		name, in, class string
		secret          bool
	}{
		{"carriage return", "nightly\rload", "control character", false},
		{"newline", "a\nb", "control character", false},
		{"tab", "a\tb", "control character", false},
		{"escape sequence", "ok\x1b[2K", "control character", false},
		{"NUL", "a\x00", "control character", false},
		{"DEL", "a\x7f", "control character", false},
		{"C1 NEL", "a\u0085b", "C1 control", false},
		{"C1 CSI", "a\u009b2K", "C1 control", false},
		{"right-to-left override", "abc\u202Edcb", "bidirectional", false},
		{"left-to-right embedding", "\u202Aabc", "bidirectional", false},
		{"isolate", "a\u2066b\u2069", "bidirectional", false},
		{"first strong isolate", "a\u2068b", "bidirectional", false},
		{"left-to-right mark", "a\u200Eb", "bidirectional", false},
		{"right-to-left mark", "a\u200Fb", "bidirectional", false},
		{"arabic letter mark", "a\u061Cb", "bidirectional", false},
		{"invalid UTF-8", "caf\xe9", "UTF-8", false},
		{"truncated UTF-8", "a\xe2\x80", "UTF-8", false},
		{"bare secret", secret, "secret", true},
		{"secret in a sentence", "use " + secret + " for now", "secret", true},
		{"secret glued to words", "x" + secret + "y", "secret", true},
		{"secret after a false start", "tg_tg_" + secret[3:] + "!", "secret", true},
		{"secret and control characters", secret + "\r", "secret", true},
	} {
		err := Check(tc.in)
		var p *Problem
		if !errors.As(err, &p) {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if p.Secret != tc.secret || !strings.Contains(p.Error(), tc.class) {
			t.Errorf("%s: got %q (secret %v), want a %q problem", tc.name, p.Error(), p.Secret, tc.class)
		}
		if strings.Contains(p.Error(), secret[3:]) || strings.ContainsAny(p.Error(), "\r\n\x1b\u202e") {
			t.Errorf("%s: the message quotes the input: %q", tc.name, p.Error())
		}
	}
}

func TestCheckAccepts(t *testing.T) {
	secret := token.NewSecret()
	typo := secret[:len(secret)-1] + string(rune(secret[len(secret)-1])^1)
	for _, s := range []string{
		"", "nightly load", "ticket FIN-12: ledger migration", "Zürich — café ☕ 東京",
		"\u05e9\u05dc\u05d5\u05dd", // Hebrew is fine; only the invisible bidi controls are not
		"tg_ is our prefix", "tg_" + strings.Repeat("a", 36), typo, secret[:len(secret)-1],
		"\ufffd (a replacement character someone typed)",
	} {
		if err := Check(s); err != nil {
			t.Errorf("%q refused: %v", s, err)
		}
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"nightly load":        "nightly load",
		"café":                "café",
		"ok\r\x1b[2Kfake row": `"ok\r\x1b[2Kfake row"`,
		"a\tb":                `"a\tb"`,
		"abc\u202Edcb":        `"abc\u202edcb"`,
		"a\u0085b":            `"a\u0085b"`,
		"caf\xe9":             `"caf\xe9"`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestEscapeJSON(t *testing.T) {
	in := map[string]string{"purpose": "a\u202Eb\u0085c\u2066d\r\x1b é 😀"}
	raw, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "\u202E") {
		t.Fatal("encoding/json now escapes bidi itself; EscapeJSON may be unnecessary")
	}
	got := EscapeJSON(raw)
	for _, r := range string(got) {
		if r != '\n' && (r < 0x20 || (r >= 0x7f && r <= 0x9f) || forbidden(r) != "") {
			t.Errorf("%U left raw in %s", r, got)
		}
	}
	if !strings.Contains(string(got), `\u202e`) || !strings.Contains(string(got), "é 😀") {
		t.Errorf("escaped: %s", got)
	}
	var back map[string]string
	if err := json.Unmarshal(got, &back); err != nil || back["purpose"] != in["purpose"] {
		t.Errorf("escaped JSON decodes to %q (%v), want the original", back["purpose"], err)
	}
}

func TestCheckRefusesZeroWidthAndSplitSecrets(t *testing.T) {
	secret := token.NewSecret()
	split := func(at int, sep string) string { return secret[:at] + sep + secret[at:] }
	for _, tc := range []struct {
		name, in string
		secret   bool
	}{
		{"zero-width space", "night\u200bly", false},
		{"zero-width non-joiner", "a\u200cb", false},
		{"zero-width joiner", "a\u200db", false},
		{"word joiner", "a\u2060b", false},
		{"byte order mark", "\ufeffnightly", false},
		{"secret split by a zero-width space", "use " + split(10, "\u200b"), true},
		{"secret split by a soft hyphen", split(20, "\u00ad"), true},
		{"secret split by a word joiner and a tag", split(3, "\u2060\U000e0041"), true},
		{"secret split by a variation selector", split(30, "\ufe0f"), true},
		{"secret split twice", split(5, "\u200b")[:12] + "\u00ad" + split(5, "\u200b")[12:], true},
		{"secret with an upper-case prefix", "TG_" + secret[3:], true},
		{"secret with a mixed-case prefix, split", "see Tg_" + split(15, "\u034f")[3:], true},
	} {
		var p *Problem
		if err := Check(tc.in); !errors.As(err, &p) {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if p.Secret != tc.secret {
			t.Errorf("%s: %q (secret %v), want secret %v", tc.name, p.Error(), p.Secret, tc.secret)
		}
	}
	// A soft hyphen alone is not refused in free text: it is how some
	// editors mark where a long word may break.
	if err := Check("Donau\u00addampf"); err != nil {
		t.Errorf("soft hyphen in a word: %v", err)
	}
}

func TestCheckName(t *testing.T) {
	secret := token.NewSecret()
	for _, bad := range []string{
		"alice ", " alice", "local-operator ", "alice\u00a0", "\u3000alice", "alice\t",
		"ali\u00adce", "ali\u200bce", "\x1b[2Jalice", "a\x00", "abc\u202Edcb", "ab\ufe0fc",
		secret, "repo:" + secret, "caf\xe9",
	} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) passed", bad)
		}
	}
	for _, good := range []string{"", "alice", "alice@example.com", "Zoë Müller", "00u1b2c3d4", "repo:octo/app:ref:refs/heads/main", "東京"} {
		if err := CheckName(good); err != nil {
			t.Errorf("CheckName(%q): %v", good, err)
		}
	}
}

// FuzzHasSecret hides a fresh secret in text, splits it with invisible
// characters and changes its prefix's case: it must still be found.
func FuzzHasSecret(f *testing.F) {
	f.Add("before ", " after", uint8(4), uint8(1), uint8(0))
	f.Add("", "", uint8(0), uint8(7), uint8(3))
	f.Add("tg_", "TG_", uint8(38), uint8(2), uint8(1))
	invisibles := []string{"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u034f", "\ufe0f", "\u2062", "\U000e0041", "\u115f", "\u180e"}
	f.Fuzz(func(t *testing.T, before, after string, at, which, prefixCase uint8) {
		secret := token.NewSecret()
		body := secret[3:]
		prefix := []string{"tg_", "TG_", "Tg_", "tG_"}[prefixCase%4]
		i := int(at) % (len(body) + 1)
		in := before + prefix + body[:i] + invisibles[int(which)%len(invisibles)] + body[i:] + after
		if !HasSecret(in) {
			t.Fatalf("secret not found in %q", in)
		}
		var p *Problem
		if err := Check(in); !errors.As(err, &p) || !p.Secret {
			t.Fatalf("Check(%q) = %v, want a secret problem", in, err)
		}
	})
}
