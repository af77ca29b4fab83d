package ack

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTrackerCompletesWhenAllFragmentsDone(t *testing.T) {
	t.Parallel()
	tr := New()
	tr.Add(3) // the source splits its work into three batches
	tr.Done() // and returns its own token
	for i := 0; i < 2; i++ {
		tr.Done()
		select {
		case <-tr.Completed():
			t.Fatalf("completed after %d of 3 fragments", i+1)
		default:
		}
	}
	var got error = errors.New("hook not run")
	tr.OnComplete(func(err error) { got = err })
	tr.Done()
	<-tr.Completed()
	require.NoError(t, tr.Wait(context.Background()))
	assert.NoError(t, got)
	assert.Zero(t, tr.Pending())
}

func TestTrackerFailureIsReported(t *testing.T) {
	t.Parallel()
	tr := New()
	tr.Add(2)
	tr.Done()
	tr.Fail(errors.New("archive unwritable"))
	tr.Fail(errors.New("second failure"))
	err := tr.Wait(context.Background())
	require.EqualError(t, err, "archive unwritable")
}

func TestTrackerWaitHonoursContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tr := New()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.ErrorIs(t, tr.Wait(ctx), context.DeadlineExceeded)
		tr.Done()
		assert.NoError(t, tr.Wait(context.Background()))
	})
}

func TestTrackerOnCompleteAfterCompletionRunsAtOnce(t *testing.T) {
	t.Parallel()
	tr := New()
	tr.Done()
	ran := false
	tr.OnComplete(func(error) { ran = true })
	assert.True(t, ran)
}

func TestTrackerMisuseFailsLoudly(t *testing.T) {
	t.Parallel()
	tr := New()
	tr.Done()
	assert.Panics(t, func() { tr.Done() })
	tr2 := New()
	tr2.Done()
	assert.Panics(t, func() { tr2.Add(1) })
}

func TestTrackerConcurrent(t *testing.T) {
	t.Parallel()
	tr := New()
	const n = 1000
	tr.Add(n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); tr.Done() }()
	}
	wg.Wait()
	select {
	case <-tr.Completed():
		t.Fatal("completed while the source still holds its token")
	default:
	}
	tr.Done()
	require.NoError(t, tr.Wait(context.Background()))
}

func TestChildReportsToItsParentOnceDone(t *testing.T) {
	t.Parallel()
	parent := New()
	released := 0
	child := Child(parent, func(err error) {
		assert.NoError(t, err)
		released++
	})
	parent.Done() // the parent's own token: only the child keeps it open
	child.Add(2)  // two consumers
	child.Done()  // the creator's token
	child.Done()
	select {
	case <-parent.Completed():
		t.Fatal("parent completed before its child")
	default:
	}
	assert.Zero(t, released)
	child.Done()
	require.NoError(t, parent.Wait(context.Background()))
	assert.Equal(t, 1, released)
}

func TestChildFailureFailsTheParent(t *testing.T) {
	t.Parallel()
	parent := New()
	var seen error
	child := Child(parent, func(err error) { seen = err })
	parent.Done()
	child.Fail(errors.New("intake refused"))
	require.EqualError(t, parent.Wait(context.Background()), "intake refused")
	require.EqualError(t, seen, "intake refused", "the child's own outcome reaches its callback")
	Child(nil, nil).Done() // neither a parent nor a callback
}

func TestChildWithoutParent(t *testing.T) {
	t.Parallel()
	released := false
	child := Child(nil, func(error) { released = true })
	child.Done()
	assert.True(t, released)
}
