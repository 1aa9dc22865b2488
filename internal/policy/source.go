package policy

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// BundleConfig is how the operator configured a policy bundle: the key
// file and bounds as written in the config, zero for the defaults.
type BundleConfig struct {
	// Poll is how often the bundle is fetched again (BundlePoll).
	Poll time.Duration
	// VerifyKeyFile holds the PEM public key (or certificate) signed
	// bundles are verified with.
	VerifyKeyFile string
	VerifyAlg     string
	Timeout       time.Duration
	// MaxBytes and MaxUncompressedBytes bound the bundle as read and as
	// inflated.
	MaxBytes, MaxUncompressedBytes int64
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
	o := BundleOptions{VerifyAlg: conf.VerifyAlg, Timeout: conf.Timeout,
		MaxBytes: conf.MaxBytes, MaxUncompressedBytes: conf.MaxUncompressedBytes, Fetched: fetched}
	if conf.VerifyKeyFile != "" {
		var err error
		if o.VerifyKey, err = os.ReadFile(conf.VerifyKeyFile); err != nil {
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
