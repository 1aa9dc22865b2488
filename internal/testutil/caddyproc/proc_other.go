//go:build !linux

package caddyproc

import "os/exec"

// dieWithParent does nothing here: only Linux has the kernel kill a
// process when its parent ends.
func dieWithParent(*exec.Cmd) {}
