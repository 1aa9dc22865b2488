package token

import (
	"bytes"
	"crypto/sha256"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestNewSecretShapeAndUniqueness(t *testing.T) {
	seen := make(map[string]bool)
	counts := make(map[byte]int)
	const n = 20000
	for i := 0; i < n; i++ {
		s := NewSecret()
		if len(s) != SecretLen || !strings.HasPrefix(s, Prefix) {
			t.Fatalf("bad shape %q", s)
		}
		if err := Check(s); err != nil {
			t.Fatalf("fresh secret rejected: %v", err)
		}
		if seen[s] {
			t.Fatalf("duplicate secret after %d draws", i)
		}
		seen[s] = true
		for j := len(Prefix); j < len(Prefix)+randomLen; j++ {
			counts[s[j]]++
		}
	}
	// Every base62 character must appear, each near its expected share
	// (n*30/62 ≈ 9677). A biased generator (for example a plain modulo)
	// would push some characters far off.
	if len(counts) != 62 {
		t.Fatalf("only %d distinct characters in the random part", len(counts))
	}
	expected := float64(n*randomLen) / 62
	for c, got := range counts {
		if float64(got) < expected*0.9 || float64(got) > expected*1.1 {
			t.Errorf("character %q appears %d times, expected about %.0f", c, got, expected)
		}
	}
}

func TestChecksumRejectsEverySingleCharacterChange(t *testing.T) {
	for round := 0; round < 5; round++ {
		s := NewSecret()
		for pos := 0; pos < len(s); pos++ {
			for c := 0; c < 256; c++ {
				if byte(c) == s[pos] {
					continue
				}
				mutated := []byte(s)
				mutated[pos] = byte(c)
				if Check(string(mutated)) == nil {
					t.Fatalf("secret with position %d changed to %q still passes", pos, byte(c))
				}
			}
		}
	}
}

func TestCheckRejectsGarbage(t *testing.T) {
	good := NewSecret()
	for _, s := range []string{
		"", "tg_", "Bearer " + good, good + "x", good[:len(good)-1], strings.ToUpper(good),
		"tok_" + good[3:], strings.Repeat("a", 8192), "tg_" + strings.Repeat("é", 18),
		good[:len(Prefix)+randomLen] + "zzzzzz", // checksum digits above 2^32
	} {
		if Check(s) == nil {
			t.Errorf("Check(%q) accepted garbage", s)
		}
	}
}

func TestIDsAreIndependentOfSecrets(t *testing.T) {
	id := NewID()
	if !strings.HasPrefix(id, IDPrefix) || len(id) != len(IDPrefix)+idRandomLen {
		t.Fatalf("bad id %q", id)
	}
	if NewID() == id {
		t.Fatal("two ids collided")
	}
}

func TestHasher(t *testing.T) {
	s := NewSecret()
	plain := NewHasher("").Hash(s)
	if plain != sha256.Sum256([]byte(s)) {
		t.Fatal("unpeppered hash is not SHA-256")
	}
	peppered := NewHasher("pepper-1").Hash(s)
	if peppered == plain {
		t.Fatal("pepper did not change the hash")
	}
	if NewHasher("pepper-2").Hash(s) == peppered {
		t.Fatal("different peppers gave the same hash")
	}
	if NewHasher("pepper-1").Hash(s) != peppered {
		t.Fatal("hash is not deterministic")
	}
	if bytes.Contains(plain[:], []byte(s)) {
		t.Fatal("digest contains the secret")
	}
}

func FuzzCheck(f *testing.F) {
	f.Add(NewSecret())
	f.Add("tg_")
	f.Add("")
	f.Add(strings.Repeat("\xff", SecretLen))
	f.Fuzz(func(t *testing.T, s string) {
		if Check(s) != nil {
			return
		}
		// Anything accepted must have the exact shape of a secret.
		if len(s) != SecretLen || !strings.HasPrefix(s, Prefix) {
			t.Fatalf("accepted %q", s)
		}
		for i := len(Prefix); i < len(s); i++ {
			if base62Value(s[i]) < 0 {
				t.Fatalf("accepted non-base62 byte in %q", s)
			}
		}
	})
}

func BenchmarkCheckAndHash(b *testing.B) {
	s := NewSecret()
	h := NewHasher("")
	b.ReportAllocs()
	for b.Loop() {
		if Check(s) != nil {
			b.Fatal("rejected")
		}
		_ = h.Hash(s)
	}
}

// checksum must be exactly CRC-32 (IEEE), the checksum NewSecret writes.
func TestChecksumIsCRC32IEEE(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for n := range 100 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if got, want := checksum(string(b)), crc32.ChecksumIEEE(b); got != want {
			t.Fatalf("checksum of %x = %08x, crc32 says %08x", b, got, want)
		}
	}
}
