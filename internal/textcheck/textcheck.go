// Package textcheck holds the one rule for free text people type into
// tokengate (owner, purpose, reasons, names): it must be valid UTF-8, hold
// no character that can rewrite a terminal or reorder what a reader sees,
// and hold no tokengate secret. Such text is copied into audit lines,
// upstream headers and other people's screens, so it is refused at the
// door rather than escaped everywhere it travels.
package textcheck

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tokengate/caddy-tokengate/internal/token"
)

// Problem says why a text was refused, without quoting any of it.
type Problem struct {
	// Secret is set when the text holds a string that passes the secret
	// checksum: a pasted credential, not a typo.
	Secret bool
	msg    string
}

func (p *Problem) Error() string { return p.msg }

// Check returns a *Problem when s is not acceptable free text, else nil.
// A secret is reported before any other problem, so the caller can tell
// the person to revoke it.
func Check(s string) error {
	if HasSecret(s) {
		return &Problem{Secret: true, msg: "holds what looks like a tokengate secret; it was not stored, and if it is real it should be revoked"}
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return &Problem{msg: fmt.Sprintf("is not valid UTF-8 (byte %d)", i)}
			}
		}
		if class := forbidden(r); class != "" {
			return &Problem{msg: fmt.Sprintf("holds %U, %s, at byte %d", r, class, i)}
		}
	}
	return nil
}

// CheckName returns a *Problem when s is not acceptable as a principal,
// the name of who acts (a person's claim, a workload's subject): the
// rules of Check, and no white space at either end and no invisible
// formatting character anywhere (soft hyphen, word joiner...), so that
// two names a reader cannot tell apart are never two principals, nor one
// principal shown as another. Empty s passes; callers refuse it with
// their own reason.
func CheckName(s string) error {
	if err := Check(s); err != nil {
		return err
	}
	if r, _ := utf8.DecodeRuneInString(s); unicode.IsSpace(r) {
		return &Problem{msg: "starts with white space"}
	}
	if r, _ := utf8.DecodeLastRuneInString(s); unicode.IsSpace(r) {
		return &Problem{msg: "ends with white space"}
	}
	for i, r := range s {
		if token.Invisible(r) {
			return &Problem{msg: fmt.Sprintf("holds %U, an invisible formatting character, at byte %d", r, i)}
		}
	}
	return nil
}

// forbidden names the class of a rune free text may not hold, or "".
//
// Control characters (C0 including tab, CR and LF, DEL, C1) move the
// cursor, erase lines or start escape sequences in a terminal. The bidi
// marks, embeddings, overrides and isolates reorder the text around them
// (the "Trojan Source" trick, CVE-2021-42574), so a reader sees something
// other than what is stored. Zero-width characters hide inside words: a
// secret split by one passes for text, and two strings that look equal
// are not.
func forbidden(r rune) string {
	switch {
	case r < 0x20 || r == 0x7f:
		return "a control character"
	case r >= 0x80 && r <= 0x9f:
		return "a C1 control character"
	case r == 0x061c || r == 0x200e || r == 0x200f,
		r >= 0x202a && r <= 0x202e,
		r >= 0x2066 && r <= 0x2069:
		return "a bidirectional formatting character"
	case r >= 0x200b && r <= 0x200d, r == 0x2060, r == 0xfeff:
		return "a zero-width character"
	}
	return ""
}

// HasSecret reports whether s contains a well-formed tokengate secret
// anywhere in it, whatever surrounds it, with its prefix in any case
// ("TG_") and with invisible characters (token.Invisible) inside it: a
// secret split by a zero-width space or a soft hyphen still reads, and
// copies, as the secret.
func HasSecret(s string) bool {
	if strings.IndexFunc(s, token.Invisible) >= 0 {
		s = strings.Map(func(r rune) rune {
			if token.Invisible(r) {
				return -1
			}
			return r
		}, s)
	}
	for i := 0; i+token.SecretLen <= len(s); i++ {
		if s[i]|0x20 != token.Prefix[0] || s[i+1]|0x20 != token.Prefix[1] || s[i+2] != token.Prefix[2] {
			continue
		}
		if token.Check(token.Prefix+s[i+len(token.Prefix):i+token.SecretLen]) == nil {
			return true
		}
	}
	return false
}

// Printable returns s as it may be shown in a terminal: unchanged when it
// is valid UTF-8 and every rune in it is printable, else quoted with
// strconv.Quote, which escapes control and format (bidi) characters and
// invalid bytes as \x.. and \u..... Quoting the whole value marks it as
// odd, so an escaped "\r" cannot pass for two characters someone typed.
func Printable(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// EscapeJSON rewrites every non-printable rune of encoded JSON as a \u
// escape. encoding/json escapes C0 controls (and U+2028, U+2029) but
// writes C1 controls, bidi and other format characters raw, which a
// terminal obeys. Outside strings encoding/json writes only spaces and
// newlines, so every rune rewritten here lies inside a string, where the
// escape is valid JSON that decodes to the same text.
func EscapeJSON(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		invalid := r == utf8.RuneError && size == 1
		if r == '\n' || (!invalid && strconv.IsPrint(r)) {
			if out != nil {
				out = append(out, b[i:i+size]...)
			}
			i += size
			continue
		}
		if out == nil {
			out = append(make([]byte, 0, len(b)+16), b[:i]...)
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += size
	}
	if out == nil {
		return b
	}
	return out
}
