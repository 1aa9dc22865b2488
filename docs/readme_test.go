package docs

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeStaysAnEntry keeps the README short (the guides in docs/ hold
// the rest) and keeps its two set-up commands, which CI and
// TestExampleCaddyfileRunsAsIs run, as they are written there.
func TestReadmeStaysAnEntry(t *testing.T) {
	src, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(src)
	if n := strings.Count(readme, "\n"); n >= 400 {
		t.Errorf("README.md has %d lines; keep it under 400 and move the detail into a guide in docs/", n)
	}
	for _, command := range []string{
		"```sh\ngo run ./cmd/caddy run --config Caddyfile.example\n```",
		"```sh\ngo test ./...\n```",
	} {
		if !strings.Contains(readme, command) {
			t.Errorf("README.md lacks the set-up command block\n%s", command)
		}
	}
}
