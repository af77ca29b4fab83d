package main

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

// tuneGC sets what the environment leaves unset, and nothing else.
func TestTuneGC(t *testing.T) {
	restore := func(percent int, limit int64) {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	}
	defer restore(debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64))

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	restore(100, math.MaxInt64)
	tuneGC(192<<20, runGCPercent)
	assert.Equal(t, runGCPercent, debug.SetGCPercent(100), "run's pace")
	assert.Equal(t, int64(192<<20), debug.SetMemoryLimit(math.MaxInt64), "the soft limit")

	restore(100, math.MaxInt64)
	tuneGC(200<<20, 0)
	assert.Equal(t, 100, debug.SetGCPercent(100), "replay keeps the runtime's pace")

	t.Setenv("GOGC", "50")
	t.Setenv("GOMEMLIMIT", "1GiB")
	restore(50, 1<<30)
	tuneGC(192<<20, runGCPercent)
	assert.Equal(t, 50, debug.SetGCPercent(100), "GOGC wins")
	assert.Equal(t, int64(1<<30), debug.SetMemoryLimit(math.MaxInt64), "GOMEMLIMIT wins")
}
