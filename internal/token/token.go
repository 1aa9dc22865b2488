// Package token defines the tokengate secret format and how secrets are
// hashed for storage.
//
// A secret looks like tg_<30 base62 chars of randomness><6 base62 chars of
// CRC32>. The randomness carries 178 bits from crypto/rand. The checksum lets
// the gateway (and secret scanners) reject typos and garbage offline, before
// any store lookup, the same way GitHub and Cloudflare tokens do. It is not a
// security control: anyone can compute a CRC32.
//
// Secrets are never stored. The store keeps Hash(secret): SHA-256, or
// HMAC-SHA256 when the operator configures a pepper, so that a stolen
// database alone cannot be used to confirm guessed secrets.
//
// Every token also has a public id (tok_...), drawn independently from
// crypto/rand, so the id reveals nothing about the secret.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash/crc32"
)

const (
	// Prefix starts every secret so scanners can find leaked ones.
	Prefix = "tg_"
	// IDPrefix starts every public token id.
	IDPrefix = "tok_"

	randomLen   = 30 // base62 chars: 30*log2(62) = 178.6 bits
	checksumLen = 6  // base62 chars: 62^6 > 2^32, enough for a CRC32
	idRandomLen = 20 // base62 chars: 119 bits, collision-free in practice

	// SecretLen is the exact length of every well-formed secret.
	SecretLen = len(Prefix) + randomLen + checksumLen
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// ErrMalformed is returned by Check for anything that is not a well-formed
// secret. It deliberately does not say what was wrong: callers answer every
// malformed token the same way.
var ErrMalformed = errors.New("malformed token")

// NewSecret returns a fresh secret.
func NewSecret() string {
	buf := make([]byte, SecretLen)
	copy(buf, Prefix)
	fillBase62(buf[len(Prefix) : len(Prefix)+randomLen])
	encodeChecksum(buf[len(Prefix)+randomLen:], crc32.ChecksumIEEE(buf[:len(Prefix)+randomLen]))
	return string(buf)
}

// NewID returns a fresh public token id.
func NewID() string { return newPrefixedID(IDPrefix) }

// NewPrefixedID returns prefix followed by 20 random base62 characters. Other
// public ids (management requests, decisions) use it with their own prefix.
func NewPrefixedID(prefix string) string { return newPrefixedID(prefix) }

func newPrefixedID(prefix string) string {
	buf := make([]byte, len(prefix)+idRandomLen)
	copy(buf, prefix)
	fillBase62(buf[len(prefix):])
	return string(buf)
}

// Check reports whether s is a well-formed secret: right length, prefix,
// alphabet and checksum. It does no I/O.
func Check(s string) error {
	if len(s) != SecretLen || s[:len(Prefix)] != Prefix {
		return ErrMalformed
	}
	body := s[len(Prefix) : len(Prefix)+randomLen]
	for i := 0; i < len(body); i++ {
		if base62Value(body[i]) < 0 {
			return ErrMalformed
		}
	}
	sum, ok := decodeChecksum(s[len(Prefix)+randomLen:])
	if !ok || sum != checksum(s[:len(Prefix)+randomLen]) {
		return ErrMalformed
	}
	return nil
}

// Hasher turns secrets into the digests the store is keyed by.
type Hasher struct {
	pepper []byte
}

// NewHasher returns a Hasher. With an empty pepper it uses plain SHA-256;
// otherwise HMAC-SHA256 keyed with the pepper. Changing the pepper makes every
// existing token unknown, unless the gateway is given the old one as its
// previous pepper until the tokens were used (and so re-keyed).
func NewHasher(pepper string) *Hasher {
	if pepper == "" {
		return &Hasher{}
	}
	return &Hasher{pepper: []byte(pepper)}
}

// Hash returns the 32-byte digest of secret.
func (h *Hasher) Hash(secret string) [32]byte {
	if h == nil || h.pepper == nil {
		// A stack buffer: []byte(secret) would allocate, since a secret
		// (39 bytes) is over the compiler's 32-byte stack conversion.
		var buf [64]byte
		return sha256.Sum256(append(buf[:0], secret...))
	}
	mac := hmac.New(sha256.New, h.pepper)
	mac.Write([]byte(secret))
	var out [32]byte
	mac.Sum(out[:0])
	return out
}

// fillBase62 fills dst with uniformly distributed base62 characters from
// crypto/rand, using rejection sampling so no character is more likely than
// another.
func fillBase62(dst []byte) {
	var pool [64]byte
	n := len(pool)
	for i := 0; i < len(dst); {
		if n == len(pool) {
			// crypto/rand.Read never returns an error (Go 1.24+); it
			// crashes the program rather than hand out weak randomness.
			_, _ = rand.Read(pool[:])
			n = 0
		}
		b := pool[n] & 0x3f // 0..63
		n++
		if b < 62 {
			dst[i] = base62[b]
			i++
		}
	}
}

func encodeChecksum(dst []byte, sum uint32) {
	v := uint64(sum)
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = base62[v%62]
		v /= 62
	}
}

func decodeChecksum(s string) (uint32, bool) {
	var v uint64
	for i := 0; i < len(s); i++ {
		d := base62Value(s[i])
		if d < 0 {
			return 0, false
		}
		v = v*62 + uint64(d)
	}
	if v > 0xffffffff {
		return 0, false
	}
	return uint32(v), true
}

func base62Value(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 36
	}
	return -1
}

// checksum is crc32.ChecksumIEEE(s) without converting s to a []byte,
// which escaped to the heap on every call (crc32 hands it to a function
// variable). A secret's checksummed part is 33 bytes, so the bytewise
// table loop costs less than the allocation it saves.
func checksum(s string) uint32 {
	crc := ^uint32(0)
	for i := 0; i < len(s); i++ {
		crc = crc32.IEEETable[byte(crc)^s[i]] ^ (crc >> 8)
	}
	return ^crc
}
