//go:build linux

package procstat

import (
	"os"
	"testing"
	"time"

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

func TestOfReadsAnotherProcessLikeItself(t *testing.T) {
	u, err := Of(os.Getpid())
	if !assert.NoError(t, err) {
		return
	}
	assert.Greater(t, u.CPU, time.Duration(0), "this test binary has used CPU")
	assert.Greater(t, u.RSS, int64(1<<20))
	assert.GreaterOrEqual(t, u.PeakRSS, u.RSS, "the peak is at least what is resident now")
	_, err = Of(1 << 30)
	assert.Error(t, err, "a process that does not exist is an error, not zeros")
}
