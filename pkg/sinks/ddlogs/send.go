package ddlogs

import (
	"errors"
	"fmt"

	"github.com/gwpipe/gwpipe/pkg/sinks/ddhttp"
)

var (
	openBracket  = []byte{'['}
	closeBracket = []byte{']'}
	comma        = []byte{','}
)

// body appends to segs[:0] the pieces of the uncompressed request body for
// logs [lo,hi) of p, "[log,log,…]", and returns them and their length: the
// logs that follow one another in a chunk are one piece, commas included.
func (p *payload) body(lo, hi int, segs [][]byte) ([][]byte, int) {
	segs = append(segs[:0], openBracket)
	n := 2
	for i := lo; i < hi; {
		l := p.logs[i]
		end := l.end
		j := i + 1
		for j < hi && p.logs[j].ch == l.ch && p.logs[j].off == end+1 {
			end = p.logs[j].end
			j++
		}
		if i > lo {
			segs = append(segs, comma)
			n++
		}
		segs = append(segs, l.ch.buf[l.off:end])
		n += int(end - l.off)
		i = j
	}
	return append(segs, closeBracket), n
}

// allAbandoned reports whether every caller of logs [lo,hi) has given up.
func (p *payload) allAbandoned(lo, hi int) bool {
	var last *call
	for _, l := range p.logs[lo:hi] {
		if l.ch.call != last {
			if !l.ch.call.abandoned.Load() {
				return false
			}
			last = l.ch.call
		}
	}
	return true
}

// settle counts logs [lo,hi) as finished for their callers.
func (p *payload) settle(lo, hi int) {
	for i := lo; i < hi; {
		cl := p.logs[i].ch.call
		j := i + 1
		for j < hi && p.logs[j].ch.call == cl {
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
	// The body is compressed once, and reused by every attempt.
	var rawLen int
	p.segs, rawLen = p.body(lo, hi, p.segs)
	body, zbuf, err := c.codec.EncodeSegs(c.ctx, p.segs, rawLen) // c.ctx ends when the client aborts
	if err != nil {
		return
	}
	n, wireLen := hi-lo, len(body)
	reply, err := c.dest.Send(c.ctx, &ddhttp.Request{
		Endpoint: "logs", URL: c.cfg.URL, Body: body, Encoding: c.codec.Encoding(),
		RawBytes: rawLen, Items: n, CanSplit: n > 1,
		Retry: func() bool { return !p.allAbandoned(lo, hi) },
		Log:   []any{"logs", n},
	})
	c.codec.Free(zbuf)
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
		l.ch.call.reject(int(l.idx), fmt.Sprintf("intake %d: %s", reply.Status, reply.Detail))
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
