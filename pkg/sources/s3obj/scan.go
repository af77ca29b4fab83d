package s3obj

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/valyala/fastjson"
	"google.golang.org/protobuf/encoding/protowire"
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
	// unclosed: the item is a line that starts with a '{' that does not
	// close (a document cut short, or a line of text).
	unclosed bool
	// line is the 1-based line the item starts on and offset the
	// decompressed offset of data[0] (nextItem and nextLine).
	line   int64
	offset int64
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

	// nextItem's state
	line     int64 // line number of buf[start], from 1
	midLine  bool  // buf[start] follows an object item on its line
	noMulti  int64 // no object is read across lines from before this offset
	skipLine bool  // skipping the rest of a line beyond max
	skipObj  bool  // skipping the rest of an object beyond max (state in js)
}

func newScanner(r io.Reader, max int) *scanner {
	return &scanner{r: r, max: max, buf: make([]byte, min(readChunk, max+readChunk)), line: 1}
}

// consume moves past n bytes, counting the lines they end.
func (s *scanner) consume(n int) {
	if c := bytes.Count(s.buf[s.start:s.start+n], []byte{'\n'}); c > 0 {
		s.line += int64(c)
		s.midLine = false
	}
	s.start += n
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
			// Strings are most of a CloudWatch document (the messages,
			// JSON themselves: an escaped quote every few bytes). A byte
			// loop over them beats a vectorised search for the quote that
			// must then look for a backslash before it, twice per escape
			// (BenchmarkJSONStateRun: about half the time).
			for ; i < len(p); i++ {
				if c := p[i]; c == '"' {
					break
				} else if c == '\\' {
					if i++; i == len(p) {
						st.esc = true // the escaped byte is in the next piece
						return -1
					}
				}
			}
			if i == len(p) {
				return -1
			}
			i++
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
				s.line++
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
			at := item{line: s.line, offset: s.offset()}
			s.start += n + 1
			s.line++
			s.scan = 0
			if n > s.max {
				at.data, at.truncated = line[:s.max], true
				return at, nil
			}
			at.data = bytes.TrimSuffix(line, []byte{'\r'})
			return at, nil
		}
		s.scan = s.end - s.start
		if s.scan > s.max {
			at := item{data: s.buf[s.start : s.start+s.max], truncated: true, line: s.line, offset: s.offset()}
			s.start, s.scan, s.skipping = s.end, 0, true
			return at, nil
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
			at := item{line: s.line, offset: s.offset()}
			s.start = s.end
			if len(line) > s.max {
				at.data, at.truncated = line[:s.max], true
				return at, nil
			}
			at.data = bytes.TrimSuffix(line, []byte{'\r'})
			return at, nil
		}
	}
}

// nextItem returns the next item of an object of Firehose records, cut as
// the decode stage cuts a record (package decode): lines (without '\n' and
// trailing '\r'; blank lines separate) and, on a line of JSON objects
// written back to back ({..}{..}, as Firehose concatenates envelopes), each
// object; an object that is valid JSON may span lines. A line that holds
// one object alone is returned whole, exactly as it came. White space
// between items belongs to none; every other byte belongs to exactly one
// item, or to a truncated one (beyond max, whose rest is skipped).
//
// The decode stage sees a whole record before it decides; the scanner
// holds at most max bytes, so it decides object by object as they close:
// when text follows objects on a line ({..}{..} text), the objects already
// returned stay items and the rest of the line, from the object the text
// follows, is one (the decode stage would make the whole line one item).
// A line that starts with an object followed by text is one item, as in
// the decode stage.
func (s *scanner) nextItem() (item, error) {
	if err := s.skipRest(); err != nil {
		return item{}, err
	}
	// White space. A line item keeps the spaces that start its line; an
	// item after an object on the same line starts at its first byte.
	k := 0
	for {
		p := s.buf[s.start:s.end]
		i := 0
		for i < len(p) && isSpace(p[i]) {
			i++
		}
		if nl := bytes.LastIndexByte(p[:i], '\n'); nl >= 0 {
			s.consume(nl + 1)
			i -= nl + 1
		}
		if s.midLine {
			s.consume(i)
			i = 0
		}
		if s.start+i < s.end {
			k = i
			break
		}
		if i > s.max {
			s.consume(i) // a line of nothing but white space: nothing to keep
		}
		if !s.fill() {
			s.consume(s.end - s.start)
			return item{}, s.done()
		}
	}
	if s.buf[s.start+k] != '{' {
		return s.lineItem(false)
	}
	return s.objectItem(k)
}

// objectItem reads the item that starts with the '{' at s.start+o.
func (s *scanner) objectItem(o int) (item, error) {
	multiOK := s.offset()+int64(o) >= s.noMulti
	var st jsonState
	scan, firstNL, end := o, -1, -1
	for {
		p := s.buf[s.start+scan : s.end]
		n := st.run(p)
		upto := len(p)
		if n >= 0 {
			upto = n
		}
		if firstNL < 0 {
			if j := bytes.IndexByte(p[:upto], '\n'); j >= 0 {
				firstNL = scan + j
			}
		}
		if n >= 0 {
			end = scan + n
			break
		}
		scan = s.end - s.start
		if firstNL >= 0 && !multiOK || scan-o > s.max {
			break
		}
		if !s.fill() {
			if s.err != nil {
				return item{}, s.err
			}
			break
		}
	}
	spans := firstNL >= 0 && (end < 0 || firstNL < end)
	if end >= 0 && spans && !multiOK {
		end = -1 // not closed on its line, and no reading across lines here
	}
	if end >= 0 && end-o > s.max {
		at := item{data: s.buf[s.start+o : s.start+o+s.max], truncated: true, line: s.line, offset: s.offset() + int64(o)}
		s.consume(end)
		s.midLine = true
		return at, nil
	}
	if end < 0 {
		if firstNL < 0 && scan-o > s.max {
			// One line longer than the limit, inside an object (envelopes
			// concatenated without newlines): skip the object by its
			// nesting, then go on with the next one.
			at := item{data: s.buf[s.start+o : s.start+o+s.max], truncated: true, line: s.line, offset: s.offset() + int64(o)}
			s.consume(scan)
			s.js, s.skipObj = st, true
			return at, nil
		}
		if multiOK {
			s.noMulti = s.offset() + int64(scan) // do not scan these bytes again for each line
		}
		return s.lineItem(true)
	}
	if spans && fastjson.ValidateBytes(s.buf[s.start+o:s.start+end]) != nil {
		s.noMulti = s.offset() + int64(end)
		return s.lineItem(false)
	}
	next, at := s.afterObject(end)
	switch {
	case next != '\n' && next != '{':
		// Text follows the object on its line.
		if spans {
			s.noMulti = max(s.noMulti, s.offset()+int64(end))
		}
		return s.lineItem(false)
	case next == '\n' && !s.midLine && !spans:
		// Alone on its line: the item is the line, exactly as it came.
		line := item{data: trimCR(s.buf[s.start : s.start+at]), line: s.line, offset: s.offset()}
		s.lineDone(at)
		return line, nil
	}
	obj := item{data: s.buf[s.start+o : s.start+end], line: s.line, offset: s.offset() + int64(o)}
	if spans {
		s.consume(end)
	} else {
		s.start += end // no newline in it: nothing to count
	}
	s.midLine = true
	return obj, nil
}

// lineDone consumes a line of n bytes without a newline, and the newline
// that ends it, if the stream has one there.
func (s *scanner) lineDone(n int) {
	s.start += n
	if s.start < s.end && s.buf[s.start] == '\n' {
		s.start++
		s.line++
		s.midLine = false
	}
}

// afterObject returns the first byte after s.start+end that is not a space,
// tab or carriage return, and where it is (from s.start): '\n' at the end
// of the stream, after more white space than max, or when the stream fails
// there (the object is whole; the failure comes with the next item).
func (s *scanner) afterObject(end int) (byte, int) {
	i := end
	for {
		for ; s.start+i < s.end; i++ {
			if c := s.buf[s.start+i]; c != ' ' && c != '\t' && c != '\r' {
				return c, i
			}
		}
		if i > s.max || !s.fill() {
			return '\n', i
		}
	}
}

// lineItem returns the line at s.start, at most max bytes of it.
func (s *scanner) lineItem(unclosed bool) (item, error) {
	scan := 0
	for {
		at := item{line: s.line, offset: s.offset(), unclosed: unclosed}
		if j := bytes.IndexByte(s.buf[s.start+scan:s.end], '\n'); j >= 0 {
			n := scan + j
			if n > s.max {
				at.data, at.truncated = s.buf[s.start:s.start+s.max], true
			} else {
				at.data = trimCR(s.buf[s.start : s.start+n])
			}
			s.lineDone(n)
			return at, nil
		}
		scan = s.end - s.start
		if scan > s.max {
			at.data, at.truncated = s.buf[s.start:s.start+s.max], true
			s.consume(scan)
			s.skipLine = true
			return at, nil
		}
		if !s.fill() {
			if s.err != nil {
				return item{}, s.err
			}
			at.data = trimCR(s.buf[s.start:s.end])
			if at.truncated = len(at.data) > s.max; at.truncated {
				at.data = at.data[:s.max]
			}
			s.consume(s.end - s.start)
			return at, nil
		}
	}
}

func trimCR(p []byte) []byte {
	for len(p) > 0 && p[len(p)-1] == '\r' {
		p = p[:len(p)-1]
	}
	return p
}

// skipRest skips what is left of a truncated item.
func (s *scanner) skipRest() error {
	for s.skipLine || s.skipObj {
		p := s.buf[s.start:s.end]
		if s.skipLine {
			if j := bytes.IndexByte(p, '\n'); j >= 0 {
				s.consume(j + 1)
				s.skipLine = false
				continue
			}
		} else if n := s.js.run(p); n >= 0 {
			s.consume(n)
			s.skipObj, s.midLine = false, true
			continue
		}
		s.consume(len(p))
		if !s.fill() {
			s.skipLine, s.skipObj = false, false
			return s.err
		}
	}
	return nil
}

// nextFrame returns the next length-delimited frame of a binary metric
// stream (its varint length and its bytes). A length out of range is an
// error: the frames that follow cannot be found.
func (s *scanner) nextFrame() (item, error) {
	for {
		for s.end-s.start < binary.MaxVarintLen64 && s.fill() {
		}
		if s.start == s.end {
			return item{}, s.done()
		}
		// A length of zero is an empty frame (an ExportMetricsServiceRequest
		// with nothing in it): valid, it holds nothing, and the frames after
		// it are found as before. It is passed over, not read.
		if s.buf[s.start] != 0 {
			break
		}
		s.start++
	}
	at := item{offset: s.offset()}
	size, k := protowire.ConsumeVarint(s.buf[s.start:s.end])
	short := k < 0 && s.end-s.start < binary.MaxVarintLen64 // the stream ends inside the length
	if !short && (k < 0 || size == 0 || size > uint64(s.max)) {
		return item{}, fmt.Errorf("metric-stream frame at decompressed offset %d: no length from 1 to %d bytes", at.offset, s.max)
	}
	n := max(k, 0) + int(size)
	for !short && s.end-s.start < n && s.fill() {
	}
	if s.err != nil {
		return item{}, s.err
	}
	if short || s.end-s.start < n {
		at.data, at.unterminated = s.buf[s.start:s.end], true
		s.start = s.end
		return at, nil
	}
	at.data = s.buf[s.start : s.start+n]
	s.start += n
	return at, nil
}
