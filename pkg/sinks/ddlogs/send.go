package ddlogs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/gwpipe/gwpipe/pkg/sinks/ddhttp"
)

// encoder compresses request bodies with pooled state.
type encoder struct {
	name  string // Content-Encoding; empty for none
	level int
	gz    sync.Pool // *gzip.Writer
	zs    *zstd.Encoder
	bufs  sync.Pool // *[]byte
}

func newEncoder(name string, level, concurrency int) (*encoder, error) {
	e := &encoder{level: level}
	e.bufs.New = func() any { b := make([]byte, 0, 256<<10); return &b }
	switch name {
	case "gzip":
		e.name = "gzip"
		if _, err := gzip.NewWriterLevel(io.Discard, level); err != nil {
			return nil, fmt.Errorf("ddlogs: %w", err)
		}
		e.gz.New = func() any { w, _ := gzip.NewWriterLevel(nil, level); return w }
	case "zstd":
		e.name = "zstd"
		zs, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
			zstd.WithEncoderConcurrency(concurrency))
		if err != nil {
			return nil, fmt.Errorf("ddlogs: zstd: %w", err)
		}
		e.zs = zs
	}
	return e, nil
}

func (e *encoder) close() {
	if e.zs != nil {
		e.zs.Close()
	}
}

// appendWriter is an io.Writer appending to a byte slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// encode compresses src into a pooled buffer; give it back with e.release.
func (e *encoder) encode(src []byte) *[]byte {
	bp := e.bufs.Get().(*[]byte)
	switch e.name {
	case "gzip":
		zw := e.gz.Get().(*gzip.Writer)
		aw := appendWriter{b: (*bp)[:0]}
		zw.Reset(&aw)
		_, _ = zw.Write(src) // appendWriter never fails
		_ = zw.Close()
		zw.Reset(nil)
		e.gz.Put(zw)
		*bp = aw.b
	case "zstd":
		*bp = e.zs.EncodeAll(src, (*bp)[:0])
	}
	return bp
}

func (e *encoder) release(bp *[]byte) {
	if cap(*bp) > 8<<20 {
		return
	}
	*bp = (*bp)[:0]
	e.bufs.Put(bp)
}

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
	var scratch, zbuf *[]byte
	src := p.buf
	if lo != 0 || hi != len(p.logs) {
		scratch = c.enc.bufs.Get().(*[]byte)
		*scratch = p.body(lo, hi, *scratch)
		src = *scratch
	}
	body := src
	if c.enc.name != "" {
		zbuf = c.enc.encode(src)
		body = *zbuf
	}
	rawLen := len(src)
	release := func() {
		for _, b := range []*[]byte{scratch, zbuf} {
			if b != nil {
				c.enc.release(b)
			}
		}
		scratch, zbuf = nil, nil
	}
	defer release()

	retry := c.cfg.Backoff.Retrier()
	n := hi - lo
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			if p.allAbandoned(lo, hi) {
				c.drop(p, lo, hi)
				return
			}
			c.n.retries.Add(1) // counted when sent: a retry given up in its backoff is none
		}
		status, detail, retryAfter, err, latency := c.post(body)
		res := Result{Status: status, Err: err, Logs: n, Bytes: rawLen, CompressedBytes: len(body), Latency: latency, Attempt: attempt}
		switch {
		case err == nil && status >= 200 && status < 300:
			res.Outcome = Accepted
			c.report(res)
			c.health.OK()
			c.n.accepted.Add(uint64(n))
			c.n.bytes.Add(uint64(rawLen))
			c.n.compressed.Add(uint64(len(body)))
			p.settle(lo, hi)
			return

		case err == nil && (status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge):
			c.health.OK() // the key was accepted
			reason := fmt.Sprintf("intake %d: %s", status, detail)
			if n == 1 {
				res.Outcome = Rejected
				c.report(res)
				c.n.rejected.Add(1)
				c.log.Warn("datadog logs intake rejected a log", "status", status, "detail", detail, "bytes", rawLen)
				l := p.logs[lo]
				l.call.reject(int(l.idx), reason)
				return
			}
			res.Outcome = Split
			c.report(res)
			c.n.splits.Add(1)
			c.log.Debug("datadog logs intake refused a payload; splitting it", "status", status, "detail", detail, "logs", n)
			release()
			mid := lo + n/2
			c.send(p, lo, mid)
			select {
			case <-c.abort:
				return
			default:
			}
			c.send(p, mid, hi)
			return

		case err == nil && (status == http.StatusUnauthorized || status == http.StatusForbidden):
			res.Outcome = Unauthorized
			c.health.Refused(status, detail)

		default:
			res.Outcome = Retrying
			if attempt&(attempt-1) == 0 { // attempts 1, 2, 4, 8, …: bounded log volume
				what := []any{"attempt", attempt, "logs", n}
				if err != nil {
					what = append(what, "error", err)
				} else {
					what = append(what, "status", status, "detail", detail)
				}
				c.log.Warn("datadog logs intake request failed; retrying", what...)
			}
		}
		c.report(res)
		// c.ctx ends when the client aborts.
		if retry.Wait(c.ctx, retryAfter) != nil {
			return
		}
	}
}

func (c *Client) drop(p *payload, lo, hi int) {
	c.n.dropped.Add(uint64(hi - lo))
	p.settle(lo, hi)
}

func (c *Client) report(r Result) {
	if c.cfg.OnResult != nil {
		c.cfg.OnResult(r)
	}
}

// post sends one request. detail is a short, key-free description of a non-2xx
// answer, retryAfter what its Retry-After asked for; err a key-free
// transport error.
func (c *Client) post(body []byte) (status int, detail string, retryAfter time.Duration, err error, latency time.Duration) {
	c.n.requests.Add(1)
	c.n.inFlight.Add(1)
	defer c.n.inFlight.Add(-1)
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "", 0, ddhttp.RedactErr(err, c.cfg.APIKey), 0
	}
	req.Header.Set("DD-API-KEY", c.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gwpipe")
	if c.enc.name != "" {
		req.Header.Set("Content-Encoding", c.enc.name)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", 0, ddhttp.RedactErr(err, c.cfg.APIKey), time.Since(start)
	}
	defer resp.Body.Close()
	a := ddhttp.ReadAnswer(resp, c.cfg.APIKey, start)
	return a.Status, a.Detail, a.RetryAfter, nil, time.Since(start)
}
