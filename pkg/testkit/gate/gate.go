// Package gate holds the calls of a test fake until the test lets them go:
// the test closes the gate (Hold), starts work that calls the fake, checks
// what happens while the calls wait, and opens it again (Release).
package gate

import (
	"context"
	"sync"
)

// Gate is open when zero. It is safe for concurrent use.
type Gate struct {
	mu sync.Mutex
	ch chan struct{} // nil: open
}

// Hold closes the gate: calls of Wait from now on block until Release.
func (g *Gate) Hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ch = make(chan struct{})
}

// Release opens the gate and lets every waiting call through.
func (g *Gate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
}

// Wait returns when the gate is open, or with ctx's error when ctx ends
// first.
func (g *Gate) Wait(ctx context.Context) error {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
