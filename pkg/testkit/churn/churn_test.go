package churn

import (
	"sync/atomic"
	"testing"
)

// TestStopWaitsForTheLastChange: calls come in order, one at a time, and
// none runs after stop returned.
func TestStopWaitsForTheLastChange(t *testing.T) {
	var calls, running atomic.Int64
	next := 0
	started := make(chan struct{})
	stop := Start(func(i int) {
		if running.Add(1) != 1 {
			t.Error("two changes at once")
		}
		if i != next {
			t.Errorf("change %d after %d", i, next-1)
		}
		next++
		if calls.Add(1) == 3 {
			close(started)
		}
		running.Add(-1)
	})
	<-started
	stop()
	n := calls.Load()
	if n < 3 || running.Load() != 0 {
		t.Fatalf("%d calls, %d running after stop", n, running.Load())
	}
	if calls.Load() != n {
		t.Fatal("a change ran after stop returned")
	}
}
