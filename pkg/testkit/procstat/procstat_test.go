//go:build linux

package procstat

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCPUAndRSSGrow(t *testing.T) {
	before := CPU()
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x += i
	}
	assert.NotZero(t, x)
	assert.Greater(t, CPU(), before, "CPU time advances while the process works")
	assert.Greater(t, RSS(), int64(1<<20), "a Go test binary is resident in more than 1 MiB")
}
