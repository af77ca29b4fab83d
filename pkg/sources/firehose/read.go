package firehose

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/klauspost/compress/gzip"
)

// pacedReader reads a request body under a deadline that moves with the
// bytes received: the byte after the first n is due BodyReadTimeout plus
// n/MinBodyRate after the body started. A client that stalls, or trickles
// its body, is cut off after about BodyReadTimeout whatever it announced,
// while a large body arriving at a normal pace is never hurried.
type pacedReader struct {
	r        io.Reader
	rc       *http.ResponseController
	start    time.Time
	grace    time.Duration
	rate     int64 // bytes per second; 0: no deadline
	n        int64
	deadline bool // the connection took a read deadline
}

func newPacedReader(r io.Reader, rc *http.ResponseController, start time.Time, grace time.Duration, rate int64) *pacedReader {
	return &pacedReader{r: r, rc: rc, start: start, grace: grace, rate: rate}
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.rate > 0 && p.grace > 0 {
		due := p.start.Add(p.grace + time.Duration(float64(p.n)/float64(p.rate)*float64(time.Second)))
		// A writer that cannot set deadlines (a test recorder) reads unpaced.
		p.deadline = p.rc.SetReadDeadline(due) == nil || p.deadline
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	return n, err
}

// stop lifts the deadline, once the body was read to its end: while the
// request waits for its acknowledgement the server watches the connection,
// and a deadline passing then would cancel the request. A body not read to
// its end keeps its deadline: the server reads what remains after the
// answer, and without one a stalled client would hold it for ever.
func (p *pacedReader) stop() {
	if p.deadline {
		_ = p.rc.SetReadDeadline(time.Time{})
	}
}

// limitedReader fails with a tooLargeError once more than left bytes were
// read, instead of ending quietly as io.LimitReader does.
type limitedReader struct {
	r     io.Reader
	left  int64
	what  string
	limit int64
}

func limit(r io.Reader, n int64, what string) *limitedReader {
	return &limitedReader{r: r, left: n, what: what, limit: n}
}

type tooLargeError struct {
	what  string
	limit int64
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("%s the %d-byte limit", e.what, e.limit)
}

func (l *limitedReader) Read(b []byte) (int, error) {
	if l.left < 0 {
		return 0, &tooLargeError{l.what, l.limit}
	}
	if int64(len(b)) > l.left+1 {
		b = b[:l.left+1]
	}
	n, err := l.r.Read(b)
	l.left -= int64(n)
	if l.left < 0 {
		return n, &tooLargeError{l.what, l.limit}
	}
	return n, err
}

// readStatus is the answer to a body that could not be read: 413 over a
// limit, 408 too slow, otherwise def.
func readStatus(err error, def int) int {
	var tl *tooLargeError
	var ne net.Error
	switch {
	case errors.As(err, &tl):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return http.StatusRequestTimeout
	}
	return def
}

// isGzipError tells a corrupt gzip stream from a failure to read it.
func isGzipError(err error) bool {
	return errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF)
}
