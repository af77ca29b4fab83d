// Package procstat reads this process's own resource use for benchmarks,
// which report events per CPU-second (steady on a shared, loaded machine,
// unlike wall time) and resident memory.
package procstat

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// Usage is what a process has cost so far.
type Usage struct {
	CPU     time.Duration // user + system, all threads
	RSS     int64         // resident bytes now (VmRSS)
	PeakRSS int64         // the most resident bytes so far (VmHWM)
}

// RSS is the resident set size now, from /proc/self/statm; 0 where there is
// no /proc.
func RSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
