package replay

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// counted is a state for groupCommit: a number that changes under mu, and
// a store of the values written, whose writes can be held and made to fail.
type counted struct {
	mu     sync.Mutex
	n      int
	commit *groupCommit

	started chan int      // receives the value of each write that starts
	gate    chan struct{} // closed: writes go on
	fail    atomic.Bool   // writes fail
	busy    atomic.Int32  // writes under way
	overlap atomic.Bool   // two writes were under way at once

	wmu     sync.Mutex
	written []int
}

func newCounted() *counted {
	c := &counted{started: make(chan int, 1000), gate: make(chan struct{})}
	c.commit = newGroupCommit(&c.mu)
	return c
}

func (c *counted) change() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	c.commit.changed()
}

func (c *counted) save(ctx context.Context) error {
	return c.commit.save(ctx, "counter", func() func(context.Context) error {
		v := c.n // the copy, taken under the lock
		return func(context.Context) error {
			if c.busy.Add(1) > 1 {
				c.overlap.Store(true)
			}
			defer c.busy.Add(-1)
			c.started <- v
			<-c.gate
			if c.fail.Load() {
				return errors.New("store unreachable")
			}
			c.wmu.Lock()
			c.written = append(c.written, v)
			c.wmu.Unlock()
			return nil
		}
	})
}

func (c *counted) writes() []int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return append([]int(nil), c.written...)
}

// savesBehindAWrite starts a save, waits until its write is under way
// (started), makes nine changes, which must not wait for that write, and
// nine saves, which do; then lets the writes go on (release). Every save
// must succeed.
func savesBehindAWrite(t *testing.T, change func(), save func(context.Context) error, started, release func()) {
	t.Helper()
	first := make(chan error, 1)
	go func() { first <- save(context.Background()) }()
	started()

	changed := make(chan struct{})
	go func() {
		for range 9 {
			change()
		}
		close(changed)
	}()
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("changes waited for the write under way")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 9)
	for range 9 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- save(context.Background()) }()
	}
	release()
	require.NoError(t, <-first)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// TestGroupCommitCarriesTheSavesBehindAWriteInOneWrite: changes go on
// while a write is under way (its lock is not held), and the saves that
// wait behind it are carried by one more write, of the state when it
// started.
func TestGroupCommitCarriesTheSavesBehindAWriteInOneWrite(t *testing.T) {
	c := newCounted()
	c.change()
	savesBehindAWrite(t, c.change, c.save,
		func() { require.Equal(t, 1, <-c.started, "the first write copies the state of its save") }, func() { close(c.gate) })
	assert.Equal(t, []int{1, 10}, c.writes(), "one write for the first save, one for the nine behind it")
	assert.False(t, c.overlap.Load(), "two writes at once")

	require.NoError(t, c.save(context.Background()))
	assert.Len(t, c.writes(), 2, "a save with nothing changed writes nothing")
}

// TestGroupCommitWritesInOrder: saves and changes from many goroutines at
// once: one write at a time, each of a later state than the one before,
// and a save returns once a write carried the state it was called on.
func TestGroupCommitWritesInOrder(t *testing.T) {
	c := newCounted()
	close(c.gate)
	go func() {
		for range c.started {
		}
	}()
	defer close(c.started)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				c.change()
				c.mu.Lock()
				at := c.n
				c.mu.Unlock()
				if !assert.NoError(t, c.save(context.Background())) {
					return
				}
				if w := c.writes(); assert.NotEmpty(t, w, "the save returned before its change was written") {
					assert.GreaterOrEqual(t, w[len(w)-1], at, "the save returned before its change was written")
				}
			}
		}()
	}
	wg.Wait()
	w := c.writes()
	assert.False(t, c.overlap.Load(), "two writes at once")
	for i := 1; i < len(w); i++ {
		require.Greater(t, w[i], w[i-1], "write %d is of an older state than the one before it: %v", i, w)
	}
	assert.Equal(t, 400, w[len(w)-1], "the last write carries every change")
}

// TestGroupCommitSaveWaitingForAWriteEndsWithItsContext: a save waiting
// for a write under way that does not end gives up when its context ends,
// and says what was not saved.
func TestGroupCommitSaveWaitingForAWriteEndsWithItsContext(t *testing.T) {
	c := newCounted()
	defer close(c.gate)
	c.change()
	go func() { _ = c.save(context.Background()) }()
	<-c.started // the first write is under way, and hangs
	c.change()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.save(ctx) }()
	time.Sleep(10 * time.Millisecond) // waiting, most likely
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
		assert.EqualError(t, err, "counter not saved: an earlier write was still under way at the deadline: context canceled")
	case <-time.After(10 * time.Second):
		t.Fatal("the save waits for the write under way past its context")
	}
	assert.Len(t, c.started, 0, "the save that gave up started no write")
}

// TestGroupCommitWritesAgainWhatAFailedWriteCarried: a write that fails
// returns its error, and the next save writes the state again, changed
// or not.
func TestGroupCommitWritesAgainWhatAFailedWriteCarried(t *testing.T) {
	c := newCounted()
	close(c.gate)
	c.change()
	c.fail.Store(true)
	require.EqualError(t, c.save(context.Background()), "store unreachable")
	assert.Empty(t, c.writes())
	c.fail.Store(false)
	require.NoError(t, c.save(context.Background()))
	assert.Equal(t, []int{1}, c.writes(), "the next save wrote what the failed write carried")
	assert.Len(t, c.started, 2)
}
