package auditlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// KeyName names the signing key in signed notes and is the checkpoints'
// origin line: a verifier key reads "tokengate-audit+<hash>+<base64>".
const KeyName = "tokengate-audit"

// KeyPath is where the writer keeps the key it generates, under Caddy's
// data dir; `caddy tokengate audit key` and verify read it there.
func KeyPath(dataDir string) string { return filepath.Join(dataDir, "tokengate", "audit.key") }

// Key signs checkpoints. Vkey is its verifier key, safe to publish.
type Key struct {
	Signer note.Signer
	Vkey   string
}

// ParseKey reads a signing key: either a signed-note private key
// (PRIVATE+KEY+tokengate-audit+...) or the standard base64 of a 32-byte
// Ed25519 seed, as an operator keeps in a secret store.
func ParseKey(s string) (*Key, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "PRIVATE+KEY+") {
		signer, err := note.NewSigner(s)
		if err != nil {
			return nil, errors.New("signing key is not a valid signed-note private key")
		}
		return keyFrom(s, signer)
	}
	seed, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key must be a signed-note private key or the base64 of a %d-byte Ed25519 seed", ed25519.SeedSize)
	}
	// GenerateKey reads exactly the seed from its random source, so the
	// same seed always gives the same key.
	skey, _, err := note.GenerateKey(bytes.NewReader(seed), KeyName)
	if err != nil {
		return nil, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, err
	}
	return keyFrom(skey, signer)
}

// keyFrom derives the verifier key from a private key string,
// PRIVATE+KEY+<name>+<hash>+<base64 of the algorithm byte and the seed>;
// the base64 may itself hold a "+".
func keyFrom(skey string, signer note.Signer) (*Key, error) {
	fields := strings.SplitN(skey, "+", 5)
	if len(fields) != 5 {
		return nil, errors.New("signing key is not a signed-note private key")
	}
	data, err := base64.StdEncoding.DecodeString(fields[4])
	if err != nil || len(data) != 1+ed25519.SeedSize {
		return nil, errors.New("signing key is not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(data[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, err
	}
	return &Key{Signer: signer, Vkey: vkey}, nil
}

// LoadKey returns the key an operator set (see ParseKey) or, when none
// is set, the key kept in dataDir, generated on first use (see KeyPath).
// An error never quotes the key.
func LoadKey(setting, dataDir string) (*Key, error) {
	if setting == "" {
		return LoadOrCreateKey(KeyPath(dataDir))
	}
	return ParseKey(setting)
}

// LoadOrCreateKey reads the private key kept in path, creating it (mode
// 0600, its folder 0700) on first use. A key file readable by others is
// refused: whoever reads it can sign checkpoints for edited lines.
func LoadOrCreateKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit signing key %s is readable by others (mode %s); chmod 600 it", path, fi.Mode().Perm())
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("audit signing key %s: %v", path, err)
	}
	return k, nil
}

func createKey(path string) (*Key, error) {
	skey, _, err := note.GenerateKey(rand.Reader, KeyName)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// O_EXCL: when two processes start at once, one key wins and the
	// other process reads it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateKey(path)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return ParseKey(skey)
}

// ReadVerifier reads a verifier key given as the string itself or as a
// file holding it.
func ReadVerifier(s string) (note.Verifier, error) {
	if v, err := note.NewVerifier(strings.TrimSpace(s)); err == nil {
		return v, nil
	}
	b, err := os.ReadFile(s)
	if err != nil {
		return nil, fmt.Errorf("--key is neither a verifier key (%s+<hash>+<base64>) nor a file holding one: %v", KeyName, err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("verifier key in %s: %v", s, err)
	}
	return v, nil
}
