// Package churn keeps changing something in the background while a test
// works against it: a reload racing the hot path (run with go test -race).
package churn

import "sync"

// Start calls change(0), change(1), … in a goroutine, one call after
// the other, until the returned stop is called; stop returns once the last
// call has returned.
func Start(change func(i int)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
				change(i)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
