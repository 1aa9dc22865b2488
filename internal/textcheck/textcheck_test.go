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
