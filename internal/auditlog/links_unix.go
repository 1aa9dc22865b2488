//go:build unix

package auditlog

import (
	"os"
	"syscall"
)

// fileState returns the number of names f has (0 once it was deleted, or
// another file renamed over its name, while the writer holds it open) and
// its size. One fstat, without the allocation of os.File.Stat.
func fileState(f *os.File) (links uint64, size int64, err error) {
	conn, err := f.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var st syscall.Stat_t
	var statErr error
	if err := conn.Control(func(fd uintptr) { statErr = syscall.Fstat(int(fd), &st) }); err != nil {
		return 0, 0, err
	}
	return uint64(st.Nlink), st.Size, statErr
}
