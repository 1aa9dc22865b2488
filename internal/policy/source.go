package policy

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/duration"
)

// BundleConfig configures a policy given as an OPA bundle: `policy` names
// a bundle file (.tar.gz, as `opa build` writes it) or the http(s) URL of
// a bundle service. Zero values take the defaults.
type BundleConfig struct {
	// How often the bundle is fetched again. Default 60s for a URL (with
	// If-None-Match, so an unchanged bundle costs a 304), 10s for a file.
	Poll duration.Duration `json:"poll,omitempty"`
	// File holding the PEM public key (or certificate) that signed
	// bundles are verified with. With it, unsigned bundles are refused;
	// without it, signed ones are.
	VerifyKey string `json:"verify_key,omitempty"`
	// Signing algorithm of the key. Default RS256.
	VerifyAlg string `json:"verify_alg,omitempty"`
	// Bound on one download, first byte to last. Default 30s.
	Timeout duration.Duration `json:"timeout,omitempty"`
	// Bounds on the bundle in bytes: as read (gzipped), default 16 MiB,
	// and inflated, default 64 MiB. Both are enforced while the bundle is
	// read, before it is unpacked and before its signature is checked, so
	// that a gzip bomb cannot take the gateway's memory.
	MaxBytes             int64 `json:"max_bundle_bytes,omitempty"`
	MaxUncompressedBytes int64 `json:"max_bundle_uncompressed_bytes,omitempty"`
}

// PollEvery is how often the bundle at location is fetched again
// (BundlePoll of c's poll); c may be nil (no policy_bundle block).
func (c *BundleConfig) PollEvery(location string) time.Duration {
	var poll time.Duration
	if c != nil {
		poll = time.Duration(c.Poll)
	}
	return BundlePoll(location, poll)
}

// OpenBundle returns the bundle location names: a bundle file or the
// URL of a bundle service. It returns nil when location names a folder,
// or nothing (the built-in policies); conf, the options of a bundle, is
// then refused rather than silently ignored. fetched, when set, hears
// every fetch (BundleOptions.Fetched).
func OpenBundle(location string, conf *BundleConfig, fetched func(result string)) (*Bundle, error) {
	if location == "" || !IsBundleURL(location) {
		if location == "" {
			if conf != nil {
				return nil, errors.New("policy_bundle is set but policy names no bundle")
			}
			return nil, nil
		}
		fi, err := os.Stat(location)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %v", location, err)
		}
		if fi.IsDir() {
			if conf != nil {
				return nil, fmt.Errorf("policy %s is a folder: poll, verify_key, verify_alg, timeout and the max_bundle sizes apply to bundles", location)
			}
			return nil, nil
		}
	}
	if conf == nil {
		conf = new(BundleConfig)
	}
	if conf.MaxBytes < 0 || conf.MaxUncompressedBytes < 0 {
		return nil, errors.New("policy bundle: max_bundle_bytes and max_bundle_uncompressed_bytes must be positive")
	}
	o := BundleOptions{VerifyAlg: conf.VerifyAlg, Timeout: time.Duration(conf.Timeout),
		MaxBytes: conf.MaxBytes, MaxUncompressedBytes: conf.MaxUncompressedBytes, Fetched: fetched}
	if conf.VerifyKey != "" {
		var err error
		if o.VerifyKey, err = os.ReadFile(conf.VerifyKey); err != nil {
			return nil, fmt.Errorf("reading the bundle verify_key: %v", err)
		}
	}
	b, err := NewBundle(location, o)
	if err != nil {
		return nil, fmt.Errorf("policy bundle: %v", err)
	}
	return b, nil
}

// BundlePoll is how often the bundle at location is fetched again: poll
// when set, else DefaultBundlePoll for a URL (with If-None-Match, so an
// unchanged bundle costs a 304) and DefaultBundleFilePoll for a file.
func BundlePoll(location string, poll time.Duration) time.Duration {
	switch {
	case poll > 0:
		return poll
	case IsBundleURL(location):
		return DefaultBundlePoll
	}
	return DefaultBundleFilePoll
}
