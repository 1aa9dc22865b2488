// Package browser runs the console's tests in a real browser: a Node
// script driving Debian's Chromium through playwright-core, given a JSON
// config and printing one JSON object of what it saw.
package browser

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Require skips t unless node with playwright-core (on NODE_PATH) and
// /usr/bin/chromium are there; under CI=true, which installs them, their
// absence fails t instead.
func Require(t testing.TB) {
	t.Helper()
	missing := ""
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		missing = "Debian's chromium (apt-get install chromium)"
	} else if err := exec.Command("node", "-e", "require('playwright-core')").Run(); err != nil {
		missing = "node with playwright-core on NODE_PATH (npm install playwright-core)"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("the browser tests need %s", missing)
	}
	t.Skipf("the browser tests need %s", missing)
}

// Run runs script with cfg and decodes what it printed into seen. The
// browser's HOME is a temporary folder of t's.
func Run(t testing.TB, script string, cfg any, seen any) {
	t.Helper()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "browser.json")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script, cfgFile)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the browser run failed: %v\n%s", err, out)
	}
	if err := json.Unmarshal(out, seen); err != nil {
		t.Fatalf("the browser run printed %q: %v", out, err)
	}
}

// Shots is where a test's screenshots go: TOKENGATE_CONSOLE_SCREENSHOTS
// when set (to look at them), else a temporary folder.
func Shots(t testing.TB) string {
	if dir := os.Getenv("TOKENGATE_CONSOLE_SCREENSHOTS"); dir != "" {
		return dir
	}
	return t.TempDir()
}
