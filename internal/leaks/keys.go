package leaks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// GitHub publishes the keys that sign its secret scanning alerts at
// https://api.github.com/meta/public_keys/secret_scanning, in this shape:
//
//	{"public_keys": [{"key_identifier": "...", "key": "-----BEGIN PUBLIC KEY-----...", "is_current": true}]}
//
// An alert names its key in Github-Public-Key-Identifier and carries an
// ECDSA P-256 / SHA-256 signature of the raw body, base64 of ASN.1 DER, in
// Github-Public-Key-Signature. A key that is no longer current still
// verifies: alerts signed just before a rotation arrive after it.
type keysDocument struct {
	PublicKeys []struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
		IsCurrent     bool   `json:"is_current"`
	} `json:"public_keys"`
}

// Key refresh for a document given as a URL.
const (
	// DefaultKeyRefresh is how often the document is fetched again.
	DefaultKeyRefresh = time.Hour
	// DefaultUnknownKeyWait is the least time between two fetches caused
	// by an alert naming a key the gateway does not know: GitHub's next
	// key shows up at once, while a flood of alerts with made-up key ids
	// cannot make the gateway hammer the key server.
	DefaultUnknownKeyWait = time.Minute
	// maxKeysDocument bounds the document read (GitHub's is about 1 KB).
	maxKeysDocument = 1 << 20
)

// Why an alert did not verify. Both are the sender's problem (401); any
// other error is the gateway's (the key document could not be read).
var (
	ErrUnknownKey   = errors.New("unknown key identifier")
	ErrBadSignature = errors.New("signature does not verify")
)

// Keys holds GitHub's alert-signing keys, read from a file (reread when
// it changes) or fetched from a URL (fetched again every Refresh, and on
// a key id it does not know, at most once every UnknownKeyWait).
type Keys struct {
	location string
	isURL    bool
	client   *http.Client
	now      func() time.Time
	// Refresh and UnknownKeyWait are for a URL; see the defaults.
	Refresh        time.Duration
	UnknownKeyWait time.Duration

	mu        sync.Mutex
	keys      map[string]*ecdsa.PublicKey
	loadedAt  time.Time // last successful read
	triedAt   time.Time // last read attempted (a URL)
	fileStamp string    // size and modification time of the file read
}

// NewKeys returns the key source at location: an http(s) URL or a file
// path. client fetches a URL (nil: http.DefaultClient); now reads the
// clock. Nothing is read until the first Verify.
func NewKeys(location string, client *http.Client, now func() time.Time) *Keys {
	if client == nil {
		client = http.DefaultClient
	}
	isURL := strings.HasPrefix(location, "https://") || strings.HasPrefix(location, "http://")
	return &Keys{location: location, isURL: isURL, client: client, now: now,
		Refresh: DefaultKeyRefresh, UnknownKeyWait: DefaultUnknownKeyWait}
}

// String names where the keys come from (a path or URL, never a secret).
func (k *Keys) String() string { return k.location }

// Verify checks that sig (base64 of an ASN.1 DER ECDSA signature) signs
// body with the key named keyID. It returns nil, ErrUnknownKey,
// ErrBadSignature, or an error reading the keys.
func (k *Keys) Verify(ctx context.Context, body []byte, keyID, sig string) error {
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(raw) == 0 {
		return ErrBadSignature
	}
	key, err := k.key(ctx, keyID)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(key, digest[:], raw) {
		return ErrBadSignature
	}
	return nil
}

// key finds keyID, reading the keys again when they are stale, changed or
// (for a URL, within the wait) do not know it.
func (k *Keys) key(ctx context.Context, keyID string) (*ecdsa.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	var loadErr error
	if k.isURL {
		stale := k.keys == nil || now.Sub(k.loadedAt) >= k.Refresh
		_, known := k.keys[keyID]
		mayRetry := k.triedAt.IsZero() || now.Sub(k.triedAt) >= k.UnknownKeyWait
		if (stale || !known) && mayRetry {
			k.triedAt = now
			loadErr = k.fetch(ctx)
		}
	} else {
		loadErr = k.readFile()
	}
	if key, ok := k.keys[keyID]; ok {
		// A failed refresh keeps the keys read before: GitHub's keys
		// change rarely, and alerts must not stop while its API is down.
		return key, nil
	}
	if loadErr != nil && k.keys == nil {
		return nil, loadErr
	}
	return nil, ErrUnknownKey
}

// readFile rereads the file when its size or modification time changed.
func (k *Keys) readFile() error {
	info, err := os.Stat(k.location)
	if err != nil {
		return fmt.Errorf("reading github keys: %v", err)
	}
	stamp := fmt.Sprint(info.Size(), info.ModTime().UnixNano())
	if stamp == k.fileStamp && k.keys != nil {
		return nil
	}
	data, err := os.ReadFile(k.location)
	if err != nil {
		return fmt.Errorf("reading github keys: %v", err)
	}
	keys, err := ParseKeys(data)
	if err != nil {
		return fmt.Errorf("reading github keys from %s: %v", k.location, err)
	}
	k.keys, k.fileStamp, k.loadedAt = keys, stamp, k.now()
	return nil
}

func (k *Keys) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.location, nil)
	if err != nil {
		return fmt.Errorf("fetching github keys: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching github keys: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching github keys from %s: status %d", k.location, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxKeysDocument+1))
	if err != nil {
		return fmt.Errorf("fetching github keys: %v", err)
	}
	if len(data) > maxKeysDocument {
		return fmt.Errorf("fetching github keys from %s: document over %d bytes", k.location, maxKeysDocument)
	}
	keys, err := ParseKeys(data)
	if err != nil {
		return fmt.Errorf("fetching github keys from %s: %v", k.location, err)
	}
	k.keys, k.loadedAt = keys, k.now()
	return nil
}

// ParseKeys reads a public-keys document. Every key must be an ECDSA
// P-256 public key in PEM; a document with none is refused, since it
// would verify nothing.
func ParseKeys(data []byte) (map[string]*ecdsa.PublicKey, error) {
	var doc keysDocument
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a public-keys document: %v", err)
	}
	keys := make(map[string]*ecdsa.PublicKey, len(doc.PublicKeys))
	for i, entry := range doc.PublicKeys {
		if entry.KeyIdentifier == "" {
			return nil, fmt.Errorf("key %d has no key_identifier", i)
		}
		block, _ := pem.Decode([]byte(entry.Key))
		if block == nil {
			return nil, fmt.Errorf("key %s is not PEM", entry.KeyIdentifier)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key %s: %v", entry.KeyIdentifier, err)
		}
		ec, ok := pub.(*ecdsa.PublicKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, fmt.Errorf("key %s is not an ECDSA P-256 key", entry.KeyIdentifier)
		}
		keys[entry.KeyIdentifier] = ec
	}
	if len(keys) == 0 {
		return nil, errors.New("no public_keys")
	}
	return keys, nil
}
