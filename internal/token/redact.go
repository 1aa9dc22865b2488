package token

import "strings"

// Redacted replaces the secret characters Redact removes.
const Redacted = "[redacted]"

// redactMin is the shortest run of base62 characters after the prefix
// that Redact treats as (part of) a secret: 16 characters are 95 bits, so
// even a truncated or mistyped secret is mostly still secret, while words
// such as tg_setup stay readable.
const redactMin = 16

// Redact returns s with every secret-like run removed: the prefix "tg_"
// (or its percent-encoded form "tg%5F") followed by redactMin or more
// base62 characters keeps its prefix and loses the rest to Redacted. It
// catches secrets whose checksum is wrong too, since a typo leaves the
// other 35 characters of a real secret. s is returned as it is, without
// allocating, when it holds nothing to redact.
//
// A client that puts its token in the URL instead of the Authorization
// header must not have it copied into the audit log.
func Redact(s string) string {
	var b strings.Builder
	from := 0 // s[from:] is not yet copied to b
	for i := 0; i < len(s); {
		// Both spellings of the prefix start with "tg".
		next := strings.Index(s[i:], "tg")
		if next < 0 {
			break
		}
		i += next
		n := secretPrefixAt(s, i)
		if n == 0 {
			i++
			continue
		}
		run := i + n
		for run < len(s) && base62Value(s[run]) >= 0 {
			run++
		}
		// "tg" is base62: a run that ends where another secret's prefix
		// begins stops before it, so that secret is found in turn.
		if run-2 >= i+n && secretPrefixAt(s, run-2) > 0 {
			run -= 2
		}
		if run-(i+n) < redactMin {
			// Not a secret; but one may start inside this run
			// ("tg_0tg_..."), so look again from the next byte.
			i++
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[from : i+n])
		b.WriteString(Redacted)
		from, i = run, run
	}
	if from == 0 {
		return s
	}
	b.WriteString(s[from:])
	return b.String()
}

// secretPrefixAt returns the length of the secret prefix at s[i:], in its
// plain or percent-encoded spelling, or 0.
func secretPrefixAt(s string, i int) int {
	rest := s[i:]
	switch {
	case strings.HasPrefix(rest, Prefix):
		return len(Prefix)
	case len(rest) >= 5 && rest[:2] == "tg" && rest[2] == '%' && rest[3] == '5' && (rest[4] == 'F' || rest[4] == 'f'):
		return 5
	}
	return 0
}
