package token

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Redacted replaces the secret characters Redact removes.
const Redacted = "[redacted]"

// redactMin is the shortest run of base62 characters after the prefix
// that Redact treats as (part of) a secret: 16 characters are 95 bits, so
// even a truncated or mistyped secret is mostly still secret, while words
// such as tg_setup stay readable.
const redactMin = 16

// Redact returns s with every secret-like run removed: the prefix "tg_",
// in any case ("TG_") and with any of its characters percent-encoded
// ("tg%5F", "%74%67_"), followed by redactMin or more base62 characters,
// each of them possibly percent-encoded and with invisible characters
// (see Invisible, raw or percent-encoded) between them, keeps its prefix
// as written and loses the rest to Redacted. It catches secrets whose
// checksum is wrong too, since a typo leaves the other 35 characters of a
// real secret. s is returned as it is, without allocating, when it holds
// nothing to redact.
//
// A client that puts its token in the URL instead of the Authorization
// header must not have it copied into the audit log, however it spells it.
func Redact(s string) string {
	var b strings.Builder
	from := 0 // s[from:] is not yet copied to b
	for i := 0; i < len(s); i++ {
		if !mayStartPrefix(s, i) {
			continue
		}
		bodyAt := secretPrefixAt(s, i)
		if bodyAt < 0 {
			continue
		}
		end, n := base62Run(s, bodyAt)
		if n < redactMin {
			// Not a secret; but one may start inside this run
			// ("tg_0tg_..."), so look again from the next byte.
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[from:bodyAt])
		b.WriteString(Redacted)
		from, i = end, end-1
	}
	if from == 0 {
		return s
	}
	b.WriteString(s[from:])
	return b.String()
}

// mayStartPrefix is secretPrefixAt's cheap first look at s[i]: a t or T
// followed by what may be a g (g, G, an escape, or an invisible
// character), or the escape %74 or %54. Most bytes of a path fail it at
// once.
func mayStartPrefix(s string, i int) bool {
	switch s[i] {
	case 't', 'T':
		if i+1 >= len(s) {
			return false
		}
		c := s[i+1]
		return c|0x20 == 'g' || c == '%' || c >= utf8.RuneSelf
	case '%':
		return i+2 < len(s) && (s[i+1] == '7' || s[i+1] == '5') && s[i+2] == '4'
	}
	return false
}

// secretPrefixAt returns where the secret body starts when a secret
// prefix, in any of Redact's spellings, starts at s[i], or -1.
func secretPrefixAt(s string, i int) int {
	for k := range len(Prefix) {
		if k > 0 {
			i = skipInvisible(s, i)
		}
		if i >= len(s) {
			return -1
		}
		c, next := unitAt(s, i)
		if k < 2 {
			c |= 0x20 // lower case; '_' is not a letter and is compared as it is
		}
		if c != Prefix[k] {
			return -1
		}
		i = next
	}
	return i
}

// base62Run reads base62 characters from s[i] on, and returns how many
// there are and where the last one ends. A run that ends with the
// letters of another secret's prefix ("...tg_") stops before them, so
// that secret is found in turn.
func base62Run(s string, i int) (end, n int) {
	end = i
	var last2 [2]int // where the last two characters start
	for {
		j := skipInvisible(s, end)
		if j >= len(s) {
			break
		}
		c, next := unitAt(s, j)
		if base62Value(c) < 0 {
			break
		}
		last2[0], last2[1] = last2[1], j
		end, n = next, n+1
	}
	if n >= 2 && secretPrefixAt(s, last2[0]) >= 0 {
		return last2[0], n - 2
	}
	return end, n
}

// unitAt reads one byte of s as a reader of the decoded text sees it: a
// %XX escape or the byte itself. It returns the byte and where the next
// one starts.
func unitAt(s string, i int) (byte, int) {
	if s[i] == '%' && i+2 < len(s) {
		if hi, lo := unhex(s[i+1]), unhex(s[i+2]); hi >= 0 && lo >= 0 {
			return byte(hi<<4 | lo), i + 3
		}
	}
	return s[i], i + 1
}

// skipInvisible returns the index after the invisible characters at s[i:]
// (raw UTF-8 or percent-encoded), or i when there are none.
func skipInvisible(s string, i int) int {
	for i < len(s) {
		if c, _ := unitAt(s, i); c < utf8.RuneSelf {
			return i // ASCII, raw or escaped, the usual case, is never invisible
		}
		r, next := runeAt(s, i)
		if !Invisible(r) {
			return i
		}
		i = next
	}
	return i
}

// runeAt decodes the rune at s[i], raw or as percent-encoded UTF-8, and
// returns where the next one starts. Anything else is utf8.RuneError.
func runeAt(s string, i int) (rune, int) {
	if s[i] != '%' {
		r, size := utf8.DecodeRuneInString(s[i:])
		return r, i + size
	}
	var buf [utf8.UTFMax]byte
	n, j := 0, i
	for n < len(buf) && j < len(s) && s[j] == '%' {
		c, next := unitAt(s, j)
		if next == j+1 {
			break // a bare %, not an escape
		}
		buf[n], n, j = c, n+1, next
		if utf8.FullRune(buf[:n]) {
			break
		}
	}
	r, size := utf8.DecodeRune(buf[:n])
	if size == 0 || size != n {
		return utf8.RuneError, i + 1
	}
	return r, j
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// Invisible reports whether r is drawn as nothing, so that it can sit
// inside a secret unseen and be lost when the text is copied: a format
// character (soft hyphen, zero-width and bidi characters, tags), a
// variation selector, or another default-ignorable code point (Hangul
// fillers, the combining grapheme joiner).
func Invisible(r rune) bool {
	return r >= 0x80 && (unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Variation_Selector, r) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r))
}
