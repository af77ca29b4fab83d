package ddlogs

import (
	"errors"
	"fmt"

	"github.com/gwpipe/gwpipe/pkg/sinks/ddhttp"
)

// body returns the uncompressed request body for logs [lo,hi) of p. The
// whole payload is p.buf itself; a part is copied into scratch.
func (p *payload) body(lo, hi int, scratch []byte) []byte {
	if lo == 0 && hi == len(p.logs) {
		return p.buf
	}
	scratch = append(scratch[:0], '[')
	scratch = append(scratch, p.buf[p.logs[lo].off:p.logs[hi-1].end]...)
	return append(scratch, ']')
}

// allAbandoned reports whether every caller of logs [lo,hi) has given up.
func (p *payload) allAbandoned(lo, hi int) bool {
	var last *call
	for _, l := range p.logs[lo:hi] {
		if l.call != last {
			if !l.call.abandoned.Load() {
				return false
			}
			last = l.call
		}
	}
	return true
}

// settle counts logs [lo,hi) as finished for their callers.
func (p *payload) settle(lo, hi int) {
	for i := lo; i < hi; {
		cl := p.logs[i].call
		j := i + 1
		for j < hi && p.logs[j].call == cl {
			j++
		}
		cl.settle(j - i)
		i = j
	}
}

// send delivers logs [lo,hi) of p: retried until accepted, split on 400/413,
// dropped when abandoned by all callers. It returns early only on abort.
func (c *Client) send(p *payload, lo, hi int) {
	if p.allAbandoned(lo, hi) {
		c.drop(p, lo, hi)
		return
	}
	// The body is built and compressed once, and reused by every attempt.
	var scratch *ddhttp.Buf
	src := p.buf
	if lo != 0 || hi != len(p.logs) {
		scratch = c.codec.Buf()
		scratch.B = p.body(lo, hi, scratch.B)
		src = scratch.B
	}
	body, zbuf, err := c.codec.Encode(c.ctx, src) // c.ctx ends when the client aborts
	if err != nil {
		c.codec.Free(scratch)
		return
	}
	n, rawLen, wireLen := hi-lo, len(src), len(body)
	reply, err := c.dest.Send(c.ctx, &ddhttp.Request{
		Endpoint: "logs", URL: c.cfg.URL, Body: body, Encoding: c.codec.Encoding(),
		RawBytes: rawLen, Items: n, CanSplit: n > 1,
		Retry: func() bool { return !p.allAbandoned(lo, hi) },
		Log:   []any{"logs", n},
	})
	c.codec.Free(zbuf)
	c.codec.Free(scratch)
	switch {
	case errors.Is(err, ddhttp.ErrGaveUp):
		c.drop(p, lo, hi)
	case err != nil: // aborted: Close settles the books
	case reply.Outcome == ddhttp.Accepted:
		c.n.accepted.Add(uint64(n))
		c.n.bytes.Add(uint64(rawLen))
		c.n.compressed.Add(uint64(wireLen))
		p.settle(lo, hi)
	case reply.Outcome == ddhttp.Rejected:
		c.n.rejected.Add(1)
		l := p.logs[lo]
		l.call.reject(int(l.idx), fmt.Sprintf("intake %d: %s", reply.Status, reply.Detail))
	case reply.Outcome == ddhttp.Split:
		c.n.splits.Add(1)
		mid := lo + n/2
		c.send(p, lo, mid)
		select {
		case <-c.abort:
			return
		default:
		}
		c.send(p, mid, hi)
	}
}

func (c *Client) drop(p *payload, lo, hi int) {
	c.n.dropped.Add(uint64(hi - lo))
	p.settle(lo, hi)
}
