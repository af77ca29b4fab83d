//go:build unix

package fakeintake

import (
	"syscall"
	"time"
)

// processCPUTime is the user+system CPU time of the process. Benchmarks
// divide by it rather than wall time, so shared, loaded machines still give
// comparable numbers.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
