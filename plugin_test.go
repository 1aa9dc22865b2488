package tokengate

import "testing"

// TestVersionTextKeepsAPackagersVersion: a CustomVersion a packager set
// with -ldflags -X stays in front; without one there is no leading space.
func TestVersionTextKeepsAPackagersVersion(t *testing.T) {
	if got := versionText("", "v0.2.0"); got != "tokengate v0.2.0, Caddy" {
		t.Errorf("without a packager's version: %q", got)
	}
	if got := versionText("debian-2.11.9-1", "v0.2.0"); got != "debian-2.11.9-1 tokengate v0.2.0, Caddy" {
		t.Errorf("with a packager's version: %q", got)
	}
}
