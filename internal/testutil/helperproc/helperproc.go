// Package helperproc runs the test binary again as another process, for a
// part a test cannot play in its own process: holding a file's lock, or
// ports claimed across processes. The helper is a test of the same binary
// that does its part only when its environment says so, tells the parent
// on standard output, and holds on until its standard input closes.
package helperproc

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"testing"
)

// Start runs the test named test (exactly) in another process of the
// running test binary, with env (NAME=value) added to its environment,
// and returns the lines of its standard output. When t ends, the
// helper's standard input is closed and the helper waited for.
func Start(t testing.TB, test string, env ...string) *bufio.Scanner {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	return bufio.NewScanner(stdout)
}

// HoldUntilReleased is the helper's side: it waits until the parent closes
// the helper's standard input (when the parent's test ends).
func HoldUntilReleased() { io.Copy(io.Discard, os.Stdin) }
