package main

import (
	"os"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
)

func TestMain(m *testing.M) {
	code := m.Run()
	caddyproc.RemoveBinary()
	os.Exit(code)
}
