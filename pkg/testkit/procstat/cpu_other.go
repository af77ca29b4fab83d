//go:build !unix

package procstat

import "time"

// CPU is not measured here: 0, and benchmarks then omit per-CPU figures.
func CPU() time.Duration { return 0 }
