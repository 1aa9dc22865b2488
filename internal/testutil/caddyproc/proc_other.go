//go:build !linux

package caddyproc

import (
	"io"
	"os/exec"
)

// dieWithParent does nothing here: only Linux has the kernel kill a
// process when its parent ends.
func dieWithParent(*exec.Cmd) {}

// holdAcrossProcesses claims nothing here (Linux's abstract sockets make
// the claim there): test processes side by side may pick one port.
func holdAcrossProcesses(int) (io.Closer, error) { return io.NopCloser(nil), nil }
