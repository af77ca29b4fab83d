package firehose

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/gwpipe/gwpipe/pkg/formats/jsonstr"
)

// requestBody is a Firehose request body
// (docs/wire-formats.md#firehose-request) as the endpoint keeps it:
// the records' data and the request id, in arena chunks that were paid for
// before they were filled.
type requestBody struct {
	RequestID  []byte
	Timestamp  int64 // 0 when absent or not an integer
	HasRecords bool  // a records array was present
	Records    [][]byte
	Kept       int64 // bytes of the chunks, as charged
}

// errMalformed marks a body that is not what the protocol allows (400).
var errMalformed = errors.New("malformed request body")

// maxDepth bounds nesting (fastjson's limit): a value inside k arrays or
// objects, the body's own object included, is at depth k+1.
const maxDepth = 300

// chunkBytes is the size of an arena chunk; a larger string gets a chunk
// of its own size.
const chunkBytes = 256 << 10

// bodyParser reads a body as it arrives and keeps only what the pipeline
// needs, so that a request costs about its records' size in memory whatever
// its JSON, and nothing is allocated before it is charged.
type bodyParser struct {
	r      *bufio.Reader
	charge func(n int64) error // reserves n bytes before they are allocated; n < 0 gives back
	chunk  []byte              // current arena chunk
	out    requestBody
	key    []byte // the current key's first bytes, unescaped
}

// parseBody parses a body from r. charge is called before each arena
// chunk is allocated (and with a negative size when one is dropped); its
// error ends the parse and is returned as is, like r's errors; a body the
// protocol does not allow fails with errMalformed.
func parseBody(r io.Reader, charge func(n int64) error) (*requestBody, error) {
	p := &bodyParser{r: bufio.NewReaderSize(r, 64<<10), charge: charge}
	if err := p.document(); err != nil {
		return nil, err
	}
	return &p.out, nil
}

func (p *bodyParser) malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, a...))
}

func (p *bodyParser) document() error {
	c, err := p.next()
	if err != nil {
		return p.eof(err)
	}
	if c != '{' {
		return p.malformed("not a JSON object")
	}
	seen := map[string]bool{}
	err = p.members(func(key string) error {
		// The first of duplicate keys counts, as fastjson's Get does.
		first := !seen[key]
		seen[key] = true
		switch {
		case key == "requestId" && first:
			return p.requestID()
		case key == "timestamp" && first:
			return p.timestamp()
		case key == "records" && first:
			return p.records()
		default:
			return p.skip(2)
		}
	})
	if err != nil {
		return err
	}
	switch _, err := p.next(); {
	case err == io.EOF:
		return nil
	case err != nil:
		return err
	default:
		return p.malformed("data after the JSON object")
	}
}

// members reads the members of an object whose '{' was read, calling
// member for each key with the reader on its value.
func (p *bodyParser) members(member func(key string) error) error {
	c, done, err := p.first('}')
	for ; err == nil && !done; c, done, err = p.after('}', "an object") {
		if c != '"' {
			return p.malformed("object key expected")
		}
		if err := p.readKey(); err != nil {
			return err
		}
		if c, err = p.next(); err != nil {
			return p.eof(err)
		}
		if c != ':' {
			return p.malformed("':' expected after an object key")
		}
		if err := member(string(p.key)); err != nil {
			return err
		}
	}
	return err
}

// first reads the first element of an array or object whose opening was
// read: its first byte, or done when it is empty.
func (p *bodyParser) first(end byte) (c byte, done bool, err error) {
	if c, err = p.next(); err != nil {
		return 0, false, p.eof(err)
	}
	return c, c == end, nil
}

// after reads what follows an element of an array or object: done at its
// end, else the first byte of the next element.
func (p *bodyParser) after(end byte, in string) (c byte, done bool, err error) {
	if c, err = p.next(); err != nil {
		return 0, false, p.eof(err)
	}
	switch c {
	case end:
		return 0, true, nil
	case ',':
		if c, err = p.next(); err != nil {
			return 0, false, p.eof(err)
		}
		return c, false, nil
	}
	return 0, false, p.malformed("',' or '%c' expected in %s", end, in)
}

func (p *bodyParser) requestID() error {
	c, err := p.next()
	if err != nil {
		return p.eof(err)
	}
	if c != '"' {
		p.out.RequestID = nil // not a string: as if it were missing
		return p.value(c, 2)
	}
	id, err := p.keepString()
	p.out.RequestID = id
	return err
}

func (p *bodyParser) timestamp() error {
	c, err := p.next()
	if err != nil {
		return p.eof(err)
	}
	if c != '-' && (c < '0' || c > '9') {
		return p.value(c, 2) // not a number: the request's arrival time is used
	}
	num, err := p.number(c)
	if err != nil {
		return err
	}
	p.out.Timestamp = parseInt(num)
	return nil
}

func (p *bodyParser) records() error {
	c, err := p.next()
	if err != nil {
		return p.eof(err)
	}
	if c != '[' {
		return p.malformed("records is not an array")
	}
	p.out.HasRecords = true
	c, done, err := p.first(']')
	for i := 0; err == nil && !done; c, done, err = p.after(']', "records") {
		if i == MaxRecords {
			return p.malformed("more than the protocol's %d records", MaxRecords)
		}
		if c != '{' {
			return p.malformed("record %d is not {\"data\": \"<base64>\"}", i)
		}
		var data []byte
		hasData := false
		err := p.members(func(key string) error {
			if key != "data" || hasData {
				return p.skip(4)
			}
			hasData = true
			c, err := p.next()
			if err != nil {
				return p.eof(err)
			}
			if c != '"' {
				return p.malformed("record %d is not {\"data\": \"<base64>\"}", i)
			}
			data, err = p.keepString()
			return err
		})
		if err != nil {
			return err
		}
		p.out.Records = append(p.out.Records, data)
		i++
	}
	return err
}

// next returns the next byte that is not white space.
func (p *bodyParser) next() (byte, error) {
	for {
		c, err := p.r.ReadByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\n', '\r':
		default:
			return c, nil
		}
	}
}

// eof turns the end of the body inside a value into a malformed body.
func (p *bodyParser) eof(err error) error {
	if err == io.EOF {
		return p.malformed("unexpected end of JSON")
	}
	return err
}

// skip validates and discards the next value.
func (p *bodyParser) skip(depth int) error {
	c, err := p.next()
	if err != nil {
		return p.eof(err)
	}
	return p.value(c, depth)
}

// value validates and discards the value starting with c.
func (p *bodyParser) value(c byte, depth int) error {
	if depth > maxDepth {
		return p.malformed("nested deeper than %d", maxDepth)
	}
	switch {
	case c == '"':
		return p.scanString(nil)
	case c == '{':
		return p.members(func(string) error { return p.skip(depth + 1) })
	case c == '[':
		c, done, err := p.first(']')
		for ; err == nil && !done; c, done, err = p.after(']', "an array") {
			if err := p.value(c, depth+1); err != nil {
				return err
			}
		}
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := p.number(c)
		return err
	case c == 't':
		return p.literal("rue")
	case c == 'f':
		return p.literal("alse")
	case c == 'n':
		return p.literal("ull")
	}
	return p.malformed("unexpected %q", c)
}

func (p *bodyParser) literal(rest string) error {
	for i := 0; i < len(rest); i++ {
		c, err := p.r.ReadByte()
		if err != nil {
			return p.eof(err)
		}
		if c != rest[i] {
			return p.malformed("invalid literal")
		}
	}
	return nil
}

// number reads a JSON number (RFC 8259) starting with c. It returns its
// text when it is short enough to be an integer worth reading.
func (p *bodyParser) number(c byte) ([]byte, error) {
	var buf [24]byte
	text := append(buf[:0], c)
	digits := func() (int, error) {
		n := 0
		for {
			b, err := p.r.ReadByte()
			if err == io.EOF {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			if b < '0' || b > '9' {
				return n, p.r.UnreadByte()
			}
			if len(text) < cap(text) {
				text = append(text, b)
			} else {
				text = text[:cap(text)] // too long for an int64: not one
			}
			n++
		}
	}
	if c == '-' {
		b, err := p.r.ReadByte()
		if err != nil {
			return nil, p.eof(err)
		}
		if b < '0' || b > '9' {
			return nil, p.malformed("invalid number")
		}
		text = append(text, b)
		c = b
	}
	if c != '0' {
		if _, err := digits(); err != nil {
			return nil, err
		}
	}
	// A fraction or an exponent: when the next byte is one of marks,
	// digits must follow (after a sign, for an exponent).
	part := func(marks string, sign bool) (bool, error) {
		b, err := p.r.ReadByte()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if strings.IndexByte(marks, b) < 0 {
			return false, p.r.UnreadByte()
		}
		if sign {
			s, err := p.r.ReadByte()
			if err != nil {
				return false, p.eof(err)
			}
			if s != '+' && s != '-' {
				_ = p.r.UnreadByte()
			}
		}
		if n, err := digits(); err != nil {
			return false, err
		} else if n == 0 {
			return false, p.malformed("invalid number")
		}
		return true, nil
	}
	frac, err := part(".", false)
	if err != nil {
		return nil, err
	}
	exp, err := part("eE", true)
	if err != nil {
		return nil, err
	}
	if frac || exp {
		return nil, nil // not an integer
	}
	return text, nil
}

// parseInt reads an integer as fastjson's GetInt64 does: 0 unless it is a
// valid int64.
func parseInt(s []byte) int64 {
	v, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// readKey reads an object key (after its '"') into p.key: only its first
// bytes are kept, enough to recognise the keys the protocol defines.
func (p *bodyParser) readKey() error {
	const keep = 64 // "requestId" with every byte escaped as \uXXXX is 54
	var raw [keep]byte
	n, long := 0, false
	err := p.scanString(func(b []byte) {
		if m := copy(raw[n:], b); m < len(b) {
			long = true
		} else {
			n += m
		}
	})
	if err != nil {
		return err
	}
	p.key = p.key[:0]
	if long {
		p.key = append(p.key, "\x00long"...) // no key the protocol defines
		return nil
	}
	p.key, _ = jsonstr.Append(p.key, raw[:n])
	return nil
}

// keepString reads a string (after its '"') into the arena and returns it
// unescaped. Small strings share chunks; one that outgrows its chunk is
// gathered in parts, then joined in a buffer of its exact size.
func (p *bodyParser) keepString() ([]byte, error) {
	start := len(p.chunk)
	var parts [][]byte // the string, once it outgrew the shared chunk
	total := 0
	var err error
	grow := func(size int) []byte {
		if err = p.charge(int64(size)); err != nil {
			return nil
		}
		p.out.Kept += int64(size)
		return make([]byte, 0, size)
	}
	scanErr := p.scanString(func(b []byte) {
		switch {
		case err != nil:
		case parts == nil && len(p.chunk)+len(b) <= cap(p.chunk):
			p.chunk = append(p.chunk, b...)
		case parts == nil && len(p.chunk) == start && len(b) < chunkBytes/4:
			// A new shared chunk, growing with the body.
			c := grow(min(chunkBytes, max(chunkBytes/16, 2*cap(p.chunk))))
			if err == nil {
				p.chunk, start = append(c, b...), 0
			}
		default:
			if parts == nil {
				// Out of the shared chunk, which keeps only what it had.
				head := p.chunk[start:]
				parts, total = [][]byte{head}, len(head)
			}
			if part := grow(len(b)); err == nil {
				parts, total = append(parts, append(part, b...)), total+len(b)
			}
		}
	})
	if scanErr != nil {
		return nil, scanErr
	}
	if err != nil {
		return nil, err
	}
	var str []byte
	if parts == nil {
		str = p.chunk[start:len(p.chunk):len(p.chunk)]
	} else {
		if str = grow(total); err != nil {
			return nil, err
		}
		for i, part := range parts {
			str = append(str, part...)
			if i > 0 {
				p.refund(cap(part))
			}
		}
		p.chunk = p.chunk[:start]
	}
	if bytes.IndexByte(str, '\\') >= 0 {
		// Rare in base64 ("\/"): decoded in place, never longer.
		u, _ := jsonstr.Append(nil, str)
		str = str[:copy(str, u)]
		if parts == nil {
			p.chunk = p.chunk[:start+len(str)]
		}
	}
	if len(str) == 0 {
		return nil, nil
	}
	return str[:len(str):len(str)], nil
}

// refund gives back the charge of a buffer that nothing references any
// more.
func (p *bodyParser) refund(size int) {
	p.out.Kept -= int64(size)
	_ = p.charge(-int64(size))
}

// scanString reads a string's body up to its closing '"' (whose opening
// '"' was read), passing its raw bytes to fn (nil: discard).
func (p *bodyParser) scanString(fn func([]byte)) error {
	escaped := false // the previous byte was an unescaped backslash
	for {
		part, err := p.r.ReadSlice('"')
		if err != nil && err != bufio.ErrBufferFull {
			return p.eof(err)
		}
		if err == bufio.ErrBufferFull {
			escaped = endsEscaping(part, escaped)
			if fn != nil {
				fn(part)
			}
			continue
		}
		body := part[:len(part)-1]
		if endsEscaping(body, escaped) {
			// An escaped quote: part of the string.
			escaped = false
			if fn != nil {
				fn(part)
			}
			continue
		}
		if fn != nil && len(body) > 0 {
			fn(body)
		}
		return nil
	}
}

// endsEscaping reports whether, after b, the next byte is escaped, given
// whether b's first byte was.
func endsEscaping(b []byte, escaped bool) bool {
	n := 0
	for n < len(b) && b[len(b)-1-n] == '\\' {
		n++
	}
	if n == len(b) {
		return escaped != (n%2 == 1)
	}
	return n%2 == 1
}
