package replay

import (
	"context"
	"fmt"
	"sync"
)

// groupCommit writes a state kept under a lock (the checkpoint, the
// ledger's markers) in order, without holding that lock while it writes.
// Changes (acknowledgements, settlements) then never wait for the store: a
// slow S3 write held back every acknowledgement, and with them the
// delivery stages.
//
// Saves are group commits: one writer at a time, and a save whose changes
// the write under way may have missed waits for the next write, which
// carries every change made meanwhile — a burst of saves costs one write,
// not one each. One writer at a time keeps the writes in order: a later
// write copies a later state. A save waiting behind a write gives up when
// its context ends (a shutdown's deadline), not only with that write.
type groupCommit struct {
	mu      *sync.Mutex // the state's lock
	changes uint64      // changes counted (changed)
	saved   uint64      // of those, the ones written
	writing bool        // a write is under way
	wrote   *sync.Cond  // signalled when a write ends, or a waiter's context
}

func newGroupCommit(mu *sync.Mutex) *groupCommit {
	return &groupCommit{mu: mu, wrote: sync.NewCond(mu)}
}

// changed counts a change of the state, to be carried by the next write.
// The caller holds the lock.
func (g *groupCommit) changed() { g.changes++ }

// save returns once every change counted before it was called is written,
// or the write that was to carry it failed (its error), or ctx ended while
// it waited for another save's write (an error naming what, and wrapping
// ctx's). take runs with the lock held: it copies what to write and
// returns the write of that copy, which runs without the lock. A change
// whose write failed is written again by the next save.
func (g *groupCommit) save(ctx context.Context, what string, take func() (write func(context.Context) error)) error {
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.wrote.Broadcast()
		g.mu.Unlock()
	})
	defer stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	want := g.changes
	for g.saved < want {
		if g.writing {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("%s not saved: an earlier write was still under way at the deadline: %w", what, err)
			}
			g.wrote.Wait()
			continue
		}
		g.writing = true
		upTo := g.changes
		write := take()
		g.mu.Unlock()
		err := write(ctx)
		g.mu.Lock()
		g.writing = false
		if err == nil {
			g.saved = max(g.saved, upTo)
		}
		g.wrote.Broadcast()
		if err != nil {
			return err
		}
	}
	return nil
}
