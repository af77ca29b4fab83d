//go:build !unix

package fakeintake

import "time"

// processCPUTime is not measured here; benchmarks then omit logs/cpu-s.
func processCPUTime() time.Duration { return 0 }
