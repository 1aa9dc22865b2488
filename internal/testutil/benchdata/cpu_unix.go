//go:build unix

package benchdata

import (
	"syscall"
	"testing"
	"time"
)

// MeasureCPU starts measuring the CPU time (user and system, all threads)
// the process uses; the function it returns, called right after the
// benchmark loop, reports it per iteration as cpu-ns/op. On a shared
// machine ns/op also counts the time other processes held the CPU;
// cpu-ns/op does not, and it does count work the benchmark causes on
// other goroutines (GC, cache maintenance, batched usage writes).
func MeasureCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
