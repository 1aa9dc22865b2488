package caddyproc

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the process when the test process
// ends, whatever way it ends: a test that panics or times out has no
// cleanup left to run, and its Caddy would go on holding its ports.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// holdAcrossProcesses claims port for this process's lifetime, against
// the other test processes on the machine: `go test ./...` runs packages
// side by side, each with its own PickPort, and two of them could pick one
// port in the moment between the pick and Caddy's bind (and Caddy's
// SO_REUSEPORT would let both bind it). The claim is an abstract Unix
// socket: it needs no file, only one process can bind a name, and the
// kernel lets go of it when the process ends, however it ends.
func holdAcrossProcesses(port int) (io.Closer, error) {
	return net.Listen("unix", fmt.Sprintf("@tokengate-test-port-%d", port))
}
