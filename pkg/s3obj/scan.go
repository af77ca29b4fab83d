package s3obj

import (
	"bytes"
	"io"
)

// readChunk is how much the scanner asks its reader for at a time.
const readChunk = 256 << 10

// item is one unit the scanner cut from the stream: a JSON document or a
// line. data aliases the scanner's buffer and is valid until the next call.
type item struct {
	data []byte
	// truncated: the item was longer than the limit; data is its first
	// bytes and the rest was skipped.
	truncated bool
	// garbage: bytes between JSON documents that are not a document.
	garbage bool
	// unterminated: the stream ended inside the item.
	unterminated bool
}

// scanner cuts a decompressed stream into JSON documents or lines while
// holding at most max bytes of any one of them: its buffer never grows
// beyond max plus one read, whatever the stream's size.
type scanner struct {
	r          io.Reader
	buf        []byte
	start, end int // unconsumed bytes: buf[start:end]
	max        int
	eof        bool
	err        error
	consumed   int64 // bytes consumed before buf[start]

	// state of the item being scanned
	inItem   bool
	scan     int // bytes of the item already scanned, from start
	skipping bool
	js       jsonState
}

func newScanner(r io.Reader, max int) *scanner {
	return &scanner{r: r, max: max, buf: make([]byte, min(readChunk, max+readChunk))}
}

// offset is the stream offset of the next unconsumed byte.
func (s *scanner) offset() int64 { return s.consumed + int64(s.start) }

// fill reads more of the stream; it reports false once nothing more can
// come (end of stream or a read error, kept in s.err).
func (s *scanner) fill() bool {
	if s.eof || s.err != nil {
		return false
	}
	if s.start > 0 && (s.start == s.end || len(s.buf)-s.end < readChunk/4) {
		n := copy(s.buf, s.buf[s.start:s.end])
		s.consumed += int64(s.start)
		s.end, s.start = n, 0
	}
	if len(s.buf)-s.end < readChunk/4 {
		// Only an item still being accumulated needs more room, and the
		// scanner gives up on an item beyond max: the buffer is bounded.
		n := min(max(2*len(s.buf), s.end+readChunk), s.max+readChunk)
		if n > len(s.buf) {
			nb := make([]byte, n)
			copy(nb, s.buf[:s.end])
			s.buf = nb
		}
	}
	for range 100 { // a reader may return 0, nil; do not spin forever
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err == io.EOF {
			s.eof = true
			return n > 0
		}
		if err != nil {
			s.err = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	s.err = io.ErrNoProgress
	return false
}

// done is the error at the end of the stream: io.EOF or the read error.
func (s *scanner) done() error {
	if s.err != nil {
		return s.err
	}
	return io.EOF
}

// peek returns up to n bytes without consuming them.
func (s *scanner) peek(n int) []byte {
	for s.end-s.start < n && s.fill() {
	}
	return s.buf[s.start:min(s.end, s.start+n)]
}

// jsonState follows JSON nesting across buffer refills. It does not
// validate: the parser does that once the document is cut.
type jsonState struct {
	depth int
	inStr bool
	esc   bool
}

// run scans p and returns the index just after the closing brace of the
// top-level value, or -1 when p ends first.
func (st *jsonState) run(p []byte) int {
	i := 0
	for i < len(p) {
		if st.esc {
			st.esc = false
			i++
			continue
		}
		if st.inStr {
			// Strings are most of a CloudWatch document (the messages):
			// jump to the closing quote with a vectorised search.
			j := bytes.IndexByte(p[i:], '"')
			if j < 0 {
				if bytes.IndexByte(p[i:], '\\') >= 0 && p[len(p)-1] == '\\' {
					// An escape at the very end: count the backslash run.
					st.esc = trailingBackslashes(p[i:])%2 == 1
				}
				return -1
			}
			if k := bytes.IndexByte(p[i:i+j], '\\'); k >= 0 {
				i += k + 1
				st.esc = true
				continue
			}
			i += j + 1
			st.inStr = false
			continue
		}
		switch p[i] {
		case '"':
			st.inStr = true
		case '{', '[':
			st.depth++
		case '}', ']':
			st.depth--
			if st.depth <= 0 {
				return i + 1
			}
		}
		i++
	}
	return -1
}

func trailingBackslashes(p []byte) int {
	n := 0
	for i := len(p) - 1; i >= 0 && p[i] == '\\'; i-- {
		n++
	}
	return n
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// nextJSON returns the next top-level JSON object of a stream of objects
// that are concatenated with or without whitespace between them.
func (s *scanner) nextJSON() (item, error) {
	for {
		if !s.inItem {
			for s.start < s.end && isSpace(s.buf[s.start]) {
				s.start++
			}
			if s.start == s.end {
				if !s.fill() {
					return item{}, s.done()
				}
				continue
			}
			if s.buf[s.start] != '{' {
				return s.garbage()
			}
			s.inItem, s.scan, s.js, s.skipping = true, 0, jsonState{}, false
		}
		if n := s.js.run(s.buf[s.start+s.scan : s.end]); n >= 0 {
			size := s.scan + n
			data := s.buf[s.start : s.start+size]
			s.start += size
			s.inItem = false
			if s.skipping {
				s.skipping = false
				continue // its head was already returned, truncated
			}
			if size > s.max {
				return item{data: data[:s.max], truncated: true}, nil
			}
			return item{data: data}, nil
		}
		s.scan = s.end - s.start
		if s.skipping {
			s.start, s.scan = s.end, 0
		} else if s.scan > s.max {
			data := s.buf[s.start : s.start+s.max]
			s.start, s.scan, s.skipping = s.end, 0, true
			return item{data: data, truncated: true}, nil
		}
		if !s.fill() {
			s.inItem = false
			if s.skipping {
				s.skipping = false
				return item{}, s.done()
			}
			if s.err != nil {
				return item{}, s.err
			}
			data := s.buf[s.start:s.end]
			s.start = s.end
			return item{data: data, unterminated: true}, nil
		}
	}
}

// garbage returns the bytes at the start of the buffer up to the next
// document or line, as one malformed item, so that reading resumes after it.
func (s *scanner) garbage() (item, error) {
	for {
		p := s.buf[s.start:s.end]
		j := bytes.IndexAny(p, "{\n")
		if j >= 0 {
			if p[j] == '\n' {
				j++
			}
			s.start += j
			return item{data: p[:j], garbage: true}, nil
		}
		if len(p) >= s.max || !s.fill() {
			if s.err != nil {
				return item{}, s.err
			}
			n := min(len(p), s.max)
			s.start += n
			return item{data: p[:n], garbage: true, truncated: len(p) > n}, nil
		}
	}
}

// nextLine returns the next line, without its "\n" or "\r\n".
func (s *scanner) nextLine() (item, error) {
	for {
		if s.skipping {
			if j := bytes.IndexByte(s.buf[s.start:s.end], '\n'); j >= 0 {
				s.start += j + 1
				s.skipping = false
				continue
			}
			s.start = s.end
			if !s.fill() {
				s.skipping = false
				return item{}, s.done()
			}
			continue
		}
		if j := bytes.IndexByte(s.buf[s.start+s.scan:s.end], '\n'); j >= 0 {
			n := s.scan + j
			line := s.buf[s.start : s.start+n]
			s.start += n + 1
			s.scan = 0
			if n > s.max {
				return item{data: line[:s.max], truncated: true}, nil
			}
			return item{data: bytes.TrimSuffix(line, []byte{'\r'})}, nil
		}
		s.scan = s.end - s.start
		if s.scan > s.max {
			data := s.buf[s.start : s.start+s.max]
			s.start, s.scan, s.skipping = s.end, 0, true
			return item{data: data, truncated: true}, nil
		}
		if !s.fill() {
			s.scan = 0
			if s.err != nil {
				return item{}, s.err
			}
			if s.start == s.end {
				return item{}, io.EOF
			}
			line := s.buf[s.start:s.end]
			s.start = s.end
			if len(line) > s.max {
				return item{data: line[:s.max], truncated: true}, nil
			}
			return item{data: bytes.TrimSuffix(line, []byte{'\r'})}, nil
		}
	}
}
