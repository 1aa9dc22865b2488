package caddyproc

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the process when the test process
// ends, whatever way it ends: a test that panics or times out has no
// cleanup left to run, and its Caddy would go on holding its ports.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
