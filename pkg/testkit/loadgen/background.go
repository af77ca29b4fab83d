package loadgen

import (
	"context"
	"sync"
)

// Running is a Run under way in the background.
type Running struct {
	// Flowing is closed once the first request is acknowledged (traffic
	// goes through the endpoint), or when the run ends without any.
	Flowing <-chan struct{}
	done    chan result
}

type result struct {
	rep Report
	err error
}

// Start runs Run in a goroutine, for tests that act on the endpoint while
// traffic flows (a reload, a signal) and then check what was sent. opts may
// include WithAckCallback: it is still called.
func Start(ctx context.Context, cfg Config, opts ...Option) *Running {
	flowing := make(chan struct{})
	var once sync.Once
	flow := func() { once.Do(func() { close(flowing) }) }
	r := &Running{Flowing: flowing, done: make(chan result, 1)}
	opts = append(opts, func(o *options) {
		prev := o.onAck
		o.onAck = func(req *Request) {
			flow()
			if prev != nil {
				prev(req)
			}
		}
	})
	go func() {
		rep, err := Run(ctx, cfg, opts...)
		flow()
		r.done <- result{rep, err}
	}()
	return r
}

// Wait waits for the run to end and returns Run's result; it may be called
// more than once.
func (r *Running) Wait() (Report, error) {
	res := <-r.done
	r.done <- res
	return res.rep, res.err
}
