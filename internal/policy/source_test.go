package policy

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/duration"
)

// The bundle block's options are for bundles: on a folder, or with no
// policy named, they are an error rather than silently ignored; and what
// they say is checked before anything is fetched.
func TestOpenBundleRefusesWhatCannotApply(t *testing.T) {
	const url = "https://bundles.example.com/tokengate.tar.gz"
	folder := t.TempDir()
	for name, c := range map[string]struct {
		location string
		conf     *BundleConfig
		wantErr  string
	}{
		"options on a folder":      {folder, &BundleConfig{VerifyKey: "k.pem"}, "is a folder"},
		"options without a policy": {"", &BundleConfig{Poll: duration.Duration(time.Minute)}, "policy_bundle is set but policy names no bundle"},
		"a policy that is not":     {filepath.Join(folder, "missing.tar.gz"), nil, "no such file"},
		"negative sizes":           {url, &BundleConfig{MaxBytes: -1}, "must be positive"},
		"a key file that is not":   {url, &BundleConfig{VerifyKey: filepath.Join(folder, "k.pem")}, "reading the bundle verify_key"},
	} {
		if _, err := OpenBundle(c.location, c.conf, nil); err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: %v, want %q", name, err, c.wantErr)
		}
	}
	for _, location := range []string{"", folder} {
		if b, err := OpenBundle(location, nil, nil); b != nil || err != nil {
			t.Errorf("%q: %v %v, want no bundle and no error", location, b, err)
		}
	}
}

func TestBundlePoll(t *testing.T) {
	var none *BundleConfig
	if got := none.PollEvery("./bundle.tar.gz"); got != DefaultBundleFilePoll {
		t.Errorf("no policy_bundle block: %s, want %s", got, DefaultBundleFilePoll)
	}
	for _, c := range []struct {
		location string
		poll     time.Duration
		want     time.Duration
	}{
		{"https://bundles.example.com/tokengate.tar.gz", 0, DefaultBundlePoll},
		{"./bundle.tar.gz", 0, DefaultBundleFilePoll},
		{"./bundle.tar.gz", 5 * time.Second, 5 * time.Second},
	} {
		if got := BundlePoll(c.location, c.poll); got != c.want {
			t.Errorf("BundlePoll(%q, %s) = %s, want %s", c.location, c.poll, got, c.want)
		}
		if got := (&BundleConfig{Poll: duration.Duration(c.poll)}).PollEvery(c.location); got != c.want {
			t.Errorf("PollEvery(%q) with poll %s = %s, want %s", c.location, c.poll, got, c.want)
		}
	}
}
